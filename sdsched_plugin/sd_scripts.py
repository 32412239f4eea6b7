"""The patch of kohya-ss/sd-scripts' ``library.train_util``.

One job: wrap the three functions every sd-scripts training script calls through the module
(``train_util.add_optimizer_arguments``, ``train_util.read_config_from_file``,
``train_util.get_scheduler_fix``) so that the floored schedules and ``--lr_scheduler_min_value``
work with no edit to sd-scripts. What the flags mean lives in ``arguments``; this module only
knows where sd-scripts asks for them:

- ``add_optimizer_arguments``: our flag joins sd-scripts' scheduler flags;
- ``read_config_from_file``: runs right after parsing in every script, before the model loads,
  whether or not a ``--config_file`` TOML is given, so bad values fail there;
- ``get_scheduler_fix``: builds a floored schedule; anything not ours goes to the original.

``install()`` / ``uninstall()`` are idempotent and keep an undo stack of the originals.
"""

from __future__ import annotations

import functools
import logging
import sys

from . import arguments, options

logger = logging.getLogger("sdsched_plugin")

MODULE_NAME = "library.train_util"
# name -> the parameter names sd-scripts' own function has; checked before anything is touched
EXPECTED = {
    "add_optimizer_arguments": ("parser",),
    "read_config_from_file": ("args", "parser"),
    "get_scheduler_fix": ("args", "optimizer", "num_processes"),
}

# (module, attribute name, original, our wrapper): uninstall() restores in reverse order
_undo: list[tuple[object, str, object, object]] = []


def mismatch(module) -> str | None:
    """Why ``module`` is not sd-scripts' train_util (the package name ``library`` is generic),
    or None when it is."""
    for name, params in EXPECTED.items():
        function = getattr(module, name, None)
        while hasattr(function, "__wrapped__"):  # our own wrapper (or another patcher's) from before
            function = function.__wrapped__
        code = getattr(function, "__code__", None)
        if code is None:
            return f"it has no function {name}()"
        if code.co_varnames[: code.co_argcount] != params:
            return f"{name}{code.co_varnames[: code.co_argcount]} does not take {params}"
    return None


def _add_optimizer_arguments(original, parser):
    result = original(parser)
    arguments.add_flags(parser)
    return result


def _read_config_from_file(original, args, parser):
    args = original(args, parser)
    try:
        arguments.check_args(args)
    except (options.OptionError, ValueError) as error:
        parser.error(str(error))  # argparse's way: usage, the message, exit status 2
    return args


def _get_scheduler_fix(original, args, optimizer, num_processes):
    request = arguments.read_request(args)
    if request is None:
        return original(args, optimizer, num_processes)
    kwargs = request.kwargs(num_processes)
    logger.info(f"sdsched-plugin: {request.name} {kwargs}")
    return request.build(optimizer, num_processes)


WRAPPERS = {
    "add_optimizer_arguments": _add_optimizer_arguments,
    "read_config_from_file": _read_config_from_file,
    "get_scheduler_fix": _get_scheduler_fix,
}


def _wrap(original, wrapper):
    @functools.wraps(original)  # keeps name, doc and __wrapped__ = original
    def patched(*args, **kwargs):
        return wrapper(original, *args, **kwargs)

    patched.sdsched_patched = True
    return patched


def install(module=None) -> bool:
    """Patch sd-scripts' train_util (imported if not given). Idempotent: functions already
    patched are left as they are, so a .pth seen twice or a second call never double-wraps;
    after ``importlib.reload`` the fresh functions are patched again. Returns False, with one
    warning, when the module is not sd-scripts' train_util."""
    if module is None:
        import importlib

        module = importlib.import_module(MODULE_NAME)
    why = mismatch(module)
    if why is not None:
        logger.warning(f"sdsched-plugin: {module.__name__} is not sd-scripts' train_util ({why}); not patched")
        return False
    for name, wrapper in WRAPPERS.items():
        original = getattr(module, name)
        if getattr(original, "sdsched_patched", False):
            continue
        patched = _wrap(original, wrapper)
        setattr(module, name, patched)
        _undo.append((module, name, original, patched))
    return True


def uninstall() -> None:
    """Restore every original. Idempotent: the undo stack is emptied, a second call does nothing.
    An attribute replaced since (by a reload, or by someone else) is left alone."""
    while _undo:
        module, name, original, patched = _undo.pop()
        if getattr(module, name, None) is patched:
            setattr(module, name, original)


def is_installed(module=None) -> bool:
    module = module or sys.modules.get(MODULE_NAME)
    return module is not None and all(getattr(getattr(module, n, None), "sdsched_patched", False) for n in WRAPPERS)


def activate(module) -> None:
    """The startup hook's entry (see ``_boot``): patch the module that just finished importing."""
    install(module)
