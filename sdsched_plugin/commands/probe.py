"""What ``sdsched doctor`` runs in a fresh interpreter of the venv, as a training script starts:
``python -m sdsched_plugin.commands.probe host KIND ROOT WITH_SCHEDULES`` imports the trainer's
host module (the startup hook, if it runs, has hooked it before this code imports it) and
reports whether it is patched; ``... probe gui KOHYA_SS_DIR`` builds the kohya_ss GUI's training
settings. Prints one ``MARKER`` line of JSON after whatever the host printed.

A module of its own, not a code string in the doctor: the doctor's process must import no torch
and no host module, this one imports both on purpose.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

MARKER = "SDSCHED-DOCTOR "  # the report line, apart from whatever the host prints


def flag(function) -> bool:
    return bool(getattr(function, "sdsched_patched", False))


def mismatches(patches) -> list[str]:
    return [f"{getattr(p.owner, '__name__', p.owner)}: {p.mismatch()}" for p in patches if p.mismatch()]


def sd_scripts_report() -> dict:
    import library.train_util as host

    from ..hosts import sd_scripts

    return {
        "file": host.__file__,
        "target": "library.train_util.get_scheduler_fix",
        "patched": flag(getattr(host, "get_scheduler_fix", None)),
        "mismatch": mismatches(sd_scripts.patches(host)),
        "complete": sd_scripts.is_installed(host),
    }


def _musubi_has_training_package() -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec("musubi_tuner.training") is not None
    except ImportError:
        return False  # before v0.2.0 there is no musubi_tuner package at all


def _old_musubi_module():
    try:
        import musubi_tuner.hv_train_network as host
    except ModuleNotFoundError as error:
        if error.name not in ("musubi_tuner", "musubi_tuner.hv_train_network"):
            raise
        import hv_train_network as host  # the flat layout before v0.2.0
    return host


def musubi_report() -> dict:
    from ..hosts import musubi

    if _musubi_has_training_package():
        import musubi_tuner.training.parser_common as parser_common
        import musubi_tuner.training.trainer_base as host

        report = {"layout": "musubi_tuner.training (v0.3.0 and later)"}
        report["mismatch"] = mismatches(musubi.parser_patches(parser_common) + musubi.trainer_patches(host))
        complete = musubi.is_installed()
    else:
        host = _old_musubi_module()
        report = {"layout": "old layout: everything in hv_train_network (before v0.3.0)"}
        report["mismatch"] = mismatches(musubi.old_layout_patches(host))
        complete = musubi.is_old_layout_installed(host)
    trainer = getattr(host, "NetworkTrainer", None)
    method = "get_lr_scheduler" if hasattr(trainer, "get_lr_scheduler") else "get_scheduler"  # <= v0.1.6
    report.update(file=host.__file__, target=f"{host.__name__}.NetworkTrainer.{method}", complete=bool(complete))
    report["patched"] = flag(getattr(trainer, method, None))
    return report


def schedules_report() -> dict:
    """Every schedule loaded once (loading one imports torch, which the host has loaded anyway)."""
    from ..schedule import registry

    for name in registry.names():
        try:
            registry.get(name)
        except Exception:
            pass
    broken = registry.broken()
    return {"available": [name for name in registry.names() if name not in broken], "broken": {name: str(why) for name, why in broken.items()}}


def host_report(kind: str, root: str, with_schedules: bool) -> dict:
    if root:
        sys.path.insert(0, root)
    report = {
        "boot": "_sdsched_plugin_boot" in sys.modules,
        "finder": any(getattr(f, "is_sdsched_finder", False) for f in sys.meta_path),
    }
    try:
        if kind == "sd-scripts":
            report.update(sd_scripts_report())
        elif kind == "musubi-tuner":
            report.update(musubi_report())
    except BaseException as error:  # SystemExit too: a host that exits at import is a finding
        report["error"] = f"{type(error).__name__}: {error}"
        report["missing"] = getattr(error, "name", None) if isinstance(error, ImportError) else None
        report["traceback"] = traceback.format_exc()[-3000:]
    if with_schedules:
        try:
            report["schedules"] = schedules_report()
        except Exception as error:
            report["schedules"] = {"error": f"{type(error).__name__}: {error}"}
    return report


def gui_report(root: str) -> dict:
    from ..hosts import kohya_gui

    return kohya_gui.probe(Path(root))


def main(argv: list[str]) -> None:
    report = gui_report(argv[1]) if argv[0] == "gui" else host_report(argv[1], argv[2], argv[3] == "1")
    sys.stdout.flush()
    print("\n" + MARKER + json.dumps(report), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
