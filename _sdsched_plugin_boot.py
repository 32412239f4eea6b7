"""Startup hook of sdsched-plugin, imported by the one-line ``sdsched_plugin.pth`` at every
Python start of the venv.

Don't import any costly modules here: this runs in every process of the training venv (the
GUI, pip, DataLoader workers), nearly all of which never train. It is a top-level module, not
part of the ``sdsched_plugin`` package, so the start costs one small module and no package
``__init__``; the ``.pth`` line is a plain import because site compiles every ``.pth`` line (a
line wrapping its code in ``exec`` is compiled twice). Only ``os`` and ``sys`` are imported,
both loaded by ``site`` already, and the meta-path finder below is duck-typed (``importlib.abc``
alone costs milliseconds). The real work is imported inside the hook, when the host module is
being imported and torch is loaded. ``SDSCHED_PLUGIN_DISABLE=1`` stops it right here.

How: a finder at the front of ``sys.meta_path`` ignores every import except the host modules
named in ``HOOKS``; for those it asks the other finders for the real spec and wraps that
spec's loader so the patch runs right after the module body has run, before any other module
can import names from it. A host module already imported is patched at once.
"""

import os
import sys

# host module -> (our module, function taking the host module) that patches it
HOOKS = {
    "library.train_util": ("sdsched_plugin.hosts.sd_scripts", "activate"),
    "library.config_util": ("sdsched_plugin.hosts.sd_scripts", "activate_config_util"),
    "musubi_tuner.training.parser_common": ("sdsched_plugin.hosts.musubi", "activate_parser_common"),
    "musubi_tuner.training.trainer_base": ("sdsched_plugin.hosts.musubi", "activate_trainer_base"),
    # before musubi-tuner v0.3.0 this one module holds all three (v0.1.x: at the checkout's top)
    "musubi_tuner.hv_train_network": ("sdsched_plugin.hosts.musubi", "activate_hv_train_network"),
    "hv_train_network": ("sdsched_plugin.hosts.musubi", "activate_hv_train_network"),
    # the metadata every musubi-tuner model is saved with (v0.1.x: a top-level utils package)
    "musubi_tuner.utils.sai_model_spec": ("sdsched_plugin.hosts.musubi", "activate_sai_model_spec"),
    "utils.sai_model_spec": ("sdsched_plugin.hosts.musubi", "activate_sai_model_spec"),
    # the kohya_ss GUI: its scheduler menu (every training tab), and v26's LECO / Anima LLLite tabs
    "kohya_gui.class_basic_training": ("sdsched_plugin.hosts.kohya_gui", "activate"),
    "kohya_gui.leco_gui": ("sdsched_plugin.hosts.kohya_gui", "activate_tab"),
    "kohya_gui.anima_lllite_gui": ("sdsched_plugin.hosts.kohya_gui", "activate_tab"),
}

# A script run as a file is __main__, imported under none of the names above. Before v0.3.0,
# musubi-tuner's hv_train_network.py holds the functions we patch itself, so when it is the
# script, the hook is on argparse instead: the script parses once its functions all exist.
MAIN_SCRIPTS = {"hv_train_network": ("argparse", ("sdsched_plugin.hosts.musubi", "watch_main"))}

OFF_SWITCH = "SDSCHED_PLUGIN_DISABLE"


# The failures already reported in this process. A broken install (the package half removed, a
# dependency missing) fails the same way for every host module the hook sees: sd-scripts alone
# imports two of them, so the user would read the same line twice. Said once, it is one problem.
_reported = set()


def run_hook(fullname, module):
    """Patch ``module``; any failure is one line on stderr, never an exception into the host,
    and the same failure is one line per process whatever number of modules it hits."""
    hook_module, hook_name = HOOKS[fullname]
    try:
        __import__(hook_module)
        getattr(sys.modules[hook_module], hook_name)(module)
    except Exception as error:
        if repr(error) in _reported:
            return
        _reported.add(repr(error))
        sys.stderr.write(
            f"sdsched-plugin: could not patch {fullname} ({error!r}); training goes on without the "
            f"floored schedulers. Set {OFF_SWITCH}=1 to switch the plugin off.\n"
        )


class HostFinder:
    """Meta-path finder that only hooks the loaders of the modules in ``HOOKS``."""

    is_sdsched_finder = True  # found by this marker, not by class, so a reloaded module still sees it

    def __init__(self):
        self._finding = set()  # guards the recursion when we ask the other finders

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in HOOKS or fullname in self._finding:
            return None
        self._finding.add(fullname)
        try:
            spec = self._real_spec(fullname, path, target)
        finally:
            self._finding.discard(fullname)
        exec_module = getattr(getattr(spec, "loader", None), "exec_module", None)
        if exec_module is None:  # not found, or a legacy loader: leave it alone
            return spec

        def exec_then_patch(module):
            exec_module(module)
            run_hook(fullname, module)

        spec.loader.exec_module = exec_then_patch
        return spec

    def _real_spec(self, fullname, path, target):
        for finder in sys.meta_path:
            find_spec = getattr(finder, "find_spec", None)
            if finder is self or find_spec is None:
                continue
            spec = find_spec(fullname, path, target)
            if spec is not None:
                return spec
        return None


def add_finder():
    """Idempotent: a .pth processed twice, or this module reloaded, adds one finder only."""
    for finder in sys.meta_path:
        if getattr(finder, "is_sdsched_finder", False):
            return finder
    finder = HostFinder()
    sys.meta_path.insert(0, finder)
    return finder


def remove_finder():
    sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "is_sdsched_finder", False)]


def main_script():
    """Module name of the script this Python runs: ``hv_train_network`` for ``python
    .../hv_train_network.py`` and for ``python -m musubi_tuner.hv_train_network``. sys.argv is
    set before site reads the .pth files; with -m it holds only "-m" until runpy runs."""
    argv = getattr(sys, "argv", None) or [""]
    if argv[0] == "-m":
        orig_argv = getattr(sys, "orig_argv", [])
        return orig_argv[orig_argv.index("-m") + 1].rpartition(".")[2] if "-m" in orig_argv[:-1] else ""
    return os.path.splitext(os.path.basename(argv[0]))[0]


def activate():
    main_hook = MAIN_SCRIPTS.get(main_script())
    if main_hook is not None:
        HOOKS.setdefault(*main_hook)
    add_finder()
    for fullname in HOOKS:
        module = sys.modules.get(fullname)
        if module is not None:
            run_hook(fullname, module)


def switched_off():
    return os.environ.get(OFF_SWITCH, "") not in ("", "0")


if not switched_off():
    try:
        activate()
    except Exception as error:  # never stop Python over the plugin
        sys.stderr.write(f"sdsched-plugin: startup hook failed ({error!r}); set {OFF_SWITCH}=1 to switch it off\n")
