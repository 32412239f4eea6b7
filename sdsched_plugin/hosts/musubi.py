"""The patch of kohya-ss/musubi-tuner (HunyuanVideo, Wan, FramePack, Qwen-Image, FLUX.1 Kontext ...).

Same flags and meaning as sd-scripts, different places, in two layouts (checked release by
release, v0.1.0 to v0.3.4 and 30c658c):

From v0.3.0, the ``musubi_tuner.training`` package:

- ``musubi_tuner.training.parser_common._add_lr_scheduler_args(parser)``: the helper that
  ``setup_parser_common`` calls for the scheduler flags (scripts import ``setup_parser_common``
  by name, so the helper is patched, not the function they hold);
- ``parser_common.read_config_from_file``: scripts import it by name too, which is why the
  startup hook patches it the moment the module body has run, before any import binds it;
- ``musubi_tuner.training.trainer_base.NetworkTrainer.get_lr_scheduler``: a method, called as
  ``self.get_lr_scheduler``; patching the class attribute reaches every trainer subclass.

Before v0.3.0, everything is in one module, ``hv_train_network``: at the top of the checkout
(``hv_train_network``, v0.1.x) or in the package (``musubi_tuner.hv_train_network``, v0.2.x).
``setup_parser_common()`` (``setup_parser()`` up to v0.1.6) adds the scheduler flags inline and
returns the parser, so it is wrapped itself; ``read_config_from_file`` as above;
``NetworkTrainer.get_lr_scheduler`` (``get_scheduler`` up to v0.1.6). The other trainers
(``wan_train_network`` ...) import these by name, and the startup hook patches the module
before they can. From v0.3.0 the same module only re-exports the ``training`` functions.

``python hv_train_network.py`` (how musubi-tuner's docs start a HunyuanVideo training) runs that
module as ``__main__``: it is never imported under its name, so no import hook sees it. For it
the startup hook calls ``watch_main``, which waits for the first ``parse_args`` of a parser with
the scheduler flags (the script's functions all exist by then), patches ``__main__`` and adds
our flags to that parser. A layout the plugin does not know gets one warning naming the
supported versions, never a floor ignored in silence.
"""

from __future__ import annotations

import importlib
import sys

from ..schedule import arguments
from . import patching

PARSER_MODULE = "musubi_tuner.training.parser_common"
TRAINER_MODULE = "musubi_tuner.training.trainer_base"
# before v0.3.0 (v0.1.x at the top of the checkout, v0.2.x in the package)
OLD_MODULES = ("hv_train_network", "musubi_tuner.hv_train_network")
SUPPORTED = "musubi-tuner v0.1.0 to v0.3.4"
TRAINER_PARAMS = ("self", "args", "optimizer", "num_processes")


# musubi-tuner's own schedule names that are ours too in sd-scripts: musubi-tuner builds them itself
MUSUBIS_OWN = ("rex",)


def build_unless_musubis_own(original, args, optimizer, num_processes):
    """Around musubi-tuner's scheduler factory: its own ``rex`` (RexLR, v0.2.11 and later) stays its
    own, untouched (a floor there is --lr_scheduler_min_lr_ratio, or our rex_floor); the rest as in
    sd-scripts."""
    if str(getattr(args, "lr_scheduler", "") or "").lower() in MUSUBIS_OWN and not getattr(args, "lr_scheduler_type", None):
        if getattr(args, "lr_scheduler_min_value", None) is not None:
            arguments.warn_once(
                "sdsched-plugin: musubi-tuner builds its own rex, which takes --lr_scheduler_min_lr_ratio; --lr_scheduler_min_value"
                " has no effect with it: use --lr_scheduler=rex_floor for the floor / musubi-tuner の rex は独自のもので、"
                "下限は --lr_scheduler_min_lr_ratio です(--lr_scheduler_min_value を使うには rex_floor)"
            )
        return original(args, optimizer, num_processes)
    return patching.build_or_delegate(original, args, optimizer, num_processes)


def parser_patches(module) -> list[patching.Patch]:
    return [
        patching.Patch(module, "_add_lr_scheduler_args", ("parser",), patching.add_flags_after),
        patching.Patch(module, "read_config_from_file", ("args", "parser"), patching.check_after_reading_config),
    ]


def trainer_patches(module) -> list[patching.Patch]:
    trainer = getattr(module, "NetworkTrainer", None)
    return [patching.Patch(trainer, "get_lr_scheduler", TRAINER_PARAMS, build_unless_musubis_own, method=True)]


def activate_parser_common(module) -> bool:
    return patching.install(parser_patches(module), "musubi-tuner's parser_common", SUPPORTED)


def activate_trainer_base(module) -> bool:
    return patching.install(trainer_patches(module), "musubi-tuner's trainer_base", SUPPORTED)


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
        and patching.is_installed(parser_patches(parser_module) + trainer_patches(trainer_module))
    )


# --- before v0.3.0: hv_train_network holds everything ---------------------------------------


def defines_its_own_functions(module) -> bool:
    """True for the old layout: ``read_config_from_file`` is the module's own (``__main__``'s
    when run as a script), not a name imported from ``musubi_tuner.training`` (v0.3.0 on)."""
    function = getattr(module, "read_config_from_file", None)
    return function is not None and getattr(function, "__module__", None) == module.__name__


def old_layout_patches(module) -> list[patching.Patch]:
    # up to v0.1.6 the parser comes from setup_parser() and the scheduler from get_scheduler()
    parser_function = "setup_parser_common" if hasattr(module, "setup_parser_common") else "setup_parser"
    trainer = getattr(module, "NetworkTrainer", None)
    method = "get_lr_scheduler" if hasattr(trainer, "get_lr_scheduler") else "get_scheduler"
    return [
        patching.Patch(module, parser_function, (), patching.add_flags_to_result),
        patching.Patch(module, "read_config_from_file", ("args", "parser"), patching.check_after_reading_config),
        patching.Patch(trainer, method, TRAINER_PARAMS, build_unless_musubis_own, method=True),
    ]


def activate_sai_model_spec(module) -> bool:
    """The startup hook's entry for musubi-tuner's ``utils.sai_model_spec``: every model its
    trainers save merges ``build_metadata(...)`` into its metadata, where the schedule joins. A
    module that is not musubi-tuner's (the name ``utils`` is generic) is left alone, silently:
    the schedules work all the same."""
    for params in (("state_dict", "architecture", "timestamp"), ("state_dict", "timestamp")):  # v0.2.0 on; v0.1.x
        patch = patching.Patch(module, "build_metadata", params, patching.add_schedule_to_metadata, prefix=True)
        if patch.mismatch() is None:
            return patching.install([patch], "musubi-tuner's sai_model_spec")
    return False


def activate_hv_train_network(module) -> bool:
    """The startup hook's entry for ``hv_train_network`` / ``musubi_tuner.hv_train_network``
    (or its ``__main__``): patch the old layout; from v0.3.0, check that the ``training``
    modules it re-exports were patched when it imported them."""
    if defines_its_own_functions(module):
        return patching.install(old_layout_patches(module), f"musubi-tuner's {OLD_MODULES[0]}", SUPPORTED)
    # v0.3.0 on; or the two-line hv_train_network.py at the top of a v0.2+ checkout, which
    # imports main from the package module (patched by then)
    if is_installed() or any(is_old_layout_installed(sys.modules.get(name)) for name in OLD_MODULES):
        return True
    if PARSER_MODULE in sys.modules and TRAINER_MODULE in sys.modules:
        return False  # their own hooks have warned why they could not patch them
    patching.warn_not_patched(module.__name__, "has none of the functions the plugin patches in a known place", SUPPORTED)
    return False


def is_old_layout_installed(module) -> bool:
    return module is not None and defines_its_own_functions(module) and patching.is_installed(old_layout_patches(module))


# --- hv_train_network.py run as __main__ -------------------------------------------------------


def watch_main(argparse_module) -> bool:
    """The startup hook's entry when the script run is ``hv_train_network.py`` (``argparse``
    is its module): wait for the script's first parse of the scheduler flags."""
    patch = patching.Patch(argparse_module.ArgumentParser, "parse_known_args", ("self", "args", "namespace"), _patch_main_then_parse)
    return patching.install([patch], "argparse")


_main_seen = []  # one look at __main__ only, also if the watch cannot be taken off (wrapped since by someone else)


def _patch_main_then_parse(original, parser, *args, **kwargs):
    """Around ``ArgumentParser.parse_known_args`` (``parse_args`` calls it). Parsers without
    ``--lr_scheduler`` (any library's) pass untouched; the first one with it is the training
    script's, and by then ``__main__`` has all its functions: patch them, add our flags to
    this parser (built by the unpatched function), and stop watching."""
    if not _main_seen and "--lr_scheduler" in getattr(parser, "_option_string_actions", {}):
        _main_seen.append(True)
        patching.uninstall_patch(sys.modules["argparse"].ArgumentParser, "parse_known_args")
        main = sys.modules.get("__main__")
        if main is not None and activate_hv_train_network(main) and defines_its_own_functions(main):
            arguments.add_flags(parser)
    return original(parser, *args, **kwargs)
