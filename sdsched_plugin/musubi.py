"""The patch of kohya-ss/musubi-tuner (HunyuanVideo, Wan, FramePack, Qwen-Image, FLUX.1 Kontext ...).

Same flags and meaning as sd-scripts, different places:

- ``musubi_tuner.training.parser_common._add_lr_scheduler_args(parser)``: the helper that
  ``setup_parser_common`` calls for the scheduler flags (scripts import ``setup_parser_common``
  by name, so the helper is patched, not the function they hold);
- ``parser_common.read_config_from_file``: scripts import it by name too, which is why the
  startup hook patches it the moment the module body has run, before any import binds it;
- ``musubi_tuner.training.trainer_base.NetworkTrainer.get_lr_scheduler``: a method, called as
  ``self.get_lr_scheduler``; patching the class attribute reaches every trainer subclass.
"""

from __future__ import annotations

import importlib
import sys

from . import hostpatch

PARSER_MODULE = "musubi_tuner.training.parser_common"
TRAINER_MODULE = "musubi_tuner.training.trainer_base"


def parser_patches(module) -> list[hostpatch.Patch]:
    return [
        hostpatch.Patch(module, "_add_lr_scheduler_args", ("parser",), hostpatch.add_flags_after),
        hostpatch.Patch(module, "read_config_from_file", ("args", "parser"), hostpatch.check_after_reading_config),
    ]


def trainer_patches(module) -> list[hostpatch.Patch]:
    trainer = getattr(module, "NetworkTrainer", None)
    params = ("self", "args", "optimizer", "num_processes")
    return [hostpatch.Patch(trainer, "get_lr_scheduler", params, hostpatch.build_or_delegate, method=True)]


def activate_parser_common(module) -> bool:
    return hostpatch.install(parser_patches(module), "musubi-tuner's parser_common")


def activate_trainer_base(module) -> bool:
    return hostpatch.install(trainer_patches(module), "musubi-tuner's trainer_base")


def install() -> bool:
    """Import and patch both musubi-tuner modules (the startup hook does this on import)."""
    return activate_parser_common(importlib.import_module(PARSER_MODULE)) & activate_trainer_base(
        importlib.import_module(TRAINER_MODULE)
    )


def is_installed() -> bool:
    parser_module, trainer_module = sys.modules.get(PARSER_MODULE), sys.modules.get(TRAINER_MODULE)
    return (
        parser_module is not None
        and trainer_module is not None
        and hostpatch.is_installed(parser_patches(parser_module) + trainer_patches(trainer_module))
    )
