"""The patch of kohya-ss/sd-scripts' ``library.train_util``.

Every sd-scripts training script calls three functions through the module, right where the
plugin needs to be: ``add_optimizer_arguments`` (our flags join the scheduler flags),
``read_config_from_file`` (right after parsing, TOML or not, before the model loads: bad
values fail here) and ``get_scheduler_fix`` (a floored schedule, or sd-scripts' own). Nothing
in sd-scripts imports them by name, and the startup hook patches the module as soon as its
body has run, before any script builds its parser.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

from . import hostpatch, options

MODULE_NAME = "library.train_util"
CONFIG_MODULE_NAME = "library.config_util"


def patches(module) -> list[hostpatch.Patch]:
    return [
        hostpatch.Patch(module, "add_optimizer_arguments", ("parser",), hostpatch.add_flags_after),
        hostpatch.Patch(module, "read_config_from_file", ("args", "parser"), hostpatch.check_after_reading_config),
        hostpatch.Patch(module, "get_scheduler_fix", ("args", "optimizer", "num_processes"), hostpatch.build_or_delegate),
    ]


def config_patches(module) -> list[hostpatch.Patch]:
    """``config_util.generate_dataset_group_by_blueprint``: every script that reads a dataset
    config or a train_data_dir calls it through the module, after parsing and before loading
    the model. An epoch-based run is checked there (the step count exists from then on)."""
    return [hostpatch.Patch(module, "generate_dataset_group_by_blueprint", ("dataset_group_blueprint",), hostpatch.check_after_dataset)]


def activate_config_util(module) -> None:
    """The startup hook's entry for ``library.config_util``."""
    hostpatch.install(config_patches(module), "sd-scripts' config_util")


def install(module=None) -> bool:
    """Patch sd-scripts' train_util (imported if not given). Idempotent; False, with one warning,
    when the module is not sd-scripts' train_util (the package name ``library`` is generic)."""
    if module is None:
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


def read_training_args(script: Path, script_args: list[str], num_processes: int):
    """The arguments of a training command as the script itself reads them: its own
    ``setup_parser()``, ``parse_args`` and (patched) ``read_config_from_file``, which also runs
    every check training makes at that point. Loads no model: the script's body only defines
    things and its ``__main__`` block does not run. Bad flags exit 2 with the script's usage."""
    folder = str(script.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    if not script.is_file():
        raise options.OptionError(
            "--", str(script), "an sd-scripts training script in that folder", "sd-scripts の学習スクリプトを指定してください"
        )
    spec = importlib.util.spec_from_file_location(f"_sdsched_script_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not callable(getattr(module, "setup_parser", None)):
        raise options.OptionError(
            "--", str(script), "a training script with setup_parser() (train_network.py, sdxl_train_network.py, ...)",
            "setup_parser() を持つ学習スクリプト(train_network.py など)",
        )
    install(importlib.import_module(MODULE_NAME))  # a no-op where the startup hook has patched it
    saved_argv, saved_world = sys.argv, os.environ.get("WORLD_SIZE")
    sys.argv = [str(script), *script_args]  # the parser's prog; read_config_from_file parses sys.argv again
    os.environ["WORLD_SIZE"] = str(num_processes)  # what accelerate launch would set
    try:
        parser = module.setup_parser()
        args = parser.parse_args(script_args)
        return sys.modules[MODULE_NAME].read_config_from_file(args, parser)
    finally:
        sys.argv = saved_argv
        if saved_world is None:
            os.environ.pop("WORLD_SIZE", None)
        else:
            os.environ["WORLD_SIZE"] = saved_world
