"""The patch of kohya-ss/sd-scripts' ``library.train_util``.

Every sd-scripts training script calls three functions through the module, right where the
plugin needs to be: ``add_optimizer_arguments`` (our flags join the scheduler flags),
``read_config_from_file`` (right after parsing, TOML or not, before the model loads: bad
values fail here) and ``get_scheduler_fix`` (a floored schedule, or sd-scripts' own). Nothing
in sd-scripts imports them by name, and the startup hook patches the module as soon as its
body has run, before any script builds its parser.

``count_run`` counts a run's steps with sd-scripts' own dataset code, as train_network.py does
before it loads a model (``dataset_count`` is the fallback for when sd-scripts is not importable).
"""

from __future__ import annotations

import importlib
import sys

from . import patching

MODULE_NAME = "library.train_util"
CONFIG_MODULE_NAME = "library.config_util"


def patches(module) -> list[patching.Patch]:
    return [
        patching.Patch(module, "add_optimizer_arguments", ("parser",), patching.add_flags_after),
        patching.Patch(module, "read_config_from_file", ("args", "parser"), patching.check_after_reading_config),
        patching.Patch(module, "get_scheduler_fix", ("args", "optimizer", "num_processes"), patching.build_or_delegate),
    ]


def config_patches(module) -> list[patching.Patch]:
    """``config_util.generate_dataset_group_by_blueprint``: every script that reads a dataset
    config or a train_data_dir calls it through the module, after parsing and before loading
    the model. An epoch-based run is checked there (the step count exists from then on)."""
    return [patching.Patch(module, "generate_dataset_group_by_blueprint", ("dataset_group_blueprint",), patching.check_after_dataset)]


def activate_config_util(module) -> None:
    """The startup hook's entry for ``library.config_util``."""
    patching.install(config_patches(module), "sd-scripts' config_util")


def install(module=None) -> bool:
    """Patch sd-scripts' train_util (imported if not given). Idempotent; False, with one warning,
    when the module is not sd-scripts' train_util (the package name ``library`` is generic)."""
    if module is None:
        module = importlib.import_module(MODULE_NAME)
    return patching.install(patches(module), "sd-scripts' train_util")


def uninstall() -> None:
    """Restore every patched function (of every host program)."""
    patching.uninstall()


def is_installed(module=None) -> bool:
    module = module or sys.modules.get(MODULE_NAME)
    return module is not None and patching.is_installed(patches(module))


def activate(module) -> None:
    """The startup hook's entry (see ``_sdsched_plugin_boot``): patch the module that just finished importing."""
    install(module)
