"""The patch of kohya-ss/sd-scripts' ``library.train_util``.

Every sd-scripts training script calls three functions through the module, right where the
plugin needs to be: ``add_optimizer_arguments`` (our flags join the scheduler flags),
``read_config_from_file`` (right after parsing, TOML or not, before the model loads: bad
values fail here) and ``get_scheduler_fix`` (a floored schedule, or sd-scripts' own). Nothing
in sd-scripts imports them by name, and the startup hook patches the module as soon as its
body has run, before any script builds its parser.
"""

from __future__ import annotations

import sys

from . import hostpatch

MODULE_NAME = "library.train_util"


def patches(module) -> list[hostpatch.Patch]:
    return [
        hostpatch.Patch(module, "add_optimizer_arguments", ("parser",), hostpatch.add_flags_after),
        hostpatch.Patch(module, "read_config_from_file", ("args", "parser"), hostpatch.check_after_reading_config),
        hostpatch.Patch(module, "get_scheduler_fix", ("args", "optimizer", "num_processes"), hostpatch.build_or_delegate),
    ]


def install(module=None) -> bool:
    """Patch sd-scripts' train_util (imported if not given). Idempotent; False, with one warning,
    when the module is not sd-scripts' train_util (the package name ``library`` is generic)."""
    if module is None:
        import importlib

        module = importlib.import_module(MODULE_NAME)
    return hostpatch.install(patches(module), "sd-scripts' train_util")


def uninstall() -> None:
    """Restore every patched function (of every host program)."""
    hostpatch.uninstall()


def is_installed(module=None) -> bool:
    module = module or sys.modules.get(MODULE_NAME)
    return module is not None and hostpatch.is_installed(patches(module))


def activate(module) -> None:
    """The startup hook's entry (see ``_sdsched_plugin_boot``): patch the module that just finished importing."""
    install(module)
