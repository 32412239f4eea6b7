"""Patching the functions of a host trainer, for every host of the sd-scripts family.

One job: the install/uninstall pair. A host module (``sd_scripts``, ``musubi``) lists its
``Patch`` entries: which function of which module or class, the parameters it must have,
and which of the three wrappers below goes around it. ``install`` checks every target
before touching any (a package named ``library`` or ``musubi_tuner`` could be anything),
skips what is already patched (a .pth seen twice, a second call), and records the original
on an undo stack; ``uninstall`` restores in reverse order and empties the stack.

The wrappers say where a host asks for a schedule; what the flags mean is in ``arguments``.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import sys
from dataclasses import dataclass
from typing import Callable

from ..schedule import arguments, options, param_groups, saved, text_encoder

logger = logging.getLogger("sdsched_plugin")


def add_flags_after(original, parser, *rest, **kwargs):
    """Around the host's function that adds the scheduler flags: ours join them."""
    result = original(parser, *rest, **kwargs)
    arguments.add_flags(parser)
    return result


def add_flags_to_result(original, *args, **kwargs):
    """Around a host function that builds and returns the whole parser, scheduler flags inline
    (musubi-tuner before v0.3.0): ours join the parser it returns."""
    parser = original(*args, **kwargs)
    arguments.add_flags(parser)
    return parser


# The arguments read_config_from_file returned last, and its parser: the dataset hook checks
# an epoch-based run against them once the dataset is counted, before the model loads.
_last_read: list = []


def check_after_reading_config(original, args, parser):
    """Around the host's read_config_from_file, which every training script calls right after
    parsing (TOML or not): the first place all values are known and the model is not loaded."""
    args = original(args, parser)
    try:
        arguments.check_args(args)
    except ValueError as error:  # options.OptionError, registry.UnknownSchedule
        parser.error(str(error))  # argparse's way: usage, the message, exit status 2
    _last_read[:] = [args, parser]
    return args


def training_args():
    """The arguments read_config_from_file returned last in this process (a training run), or None:
    the preview reads a command without training it and forgets them."""
    return _last_read[0] if _last_read else None


def forget_read_arguments() -> None:
    """The preview reads a training command without training it: its own dataset count must not
    be checked as a run of this process."""
    _last_read.clear()


def check_after_dataset(original, *args, **kwargs):
    """Around the host's dataset-group builder, which training scripts call after parsing and
    before loading the model: with --max_train_epochs, the first place the run's step count
    is known (as len(dataset group) batches per epoch)."""
    result = original(*args, **kwargs)
    group = result[0] if isinstance(result, tuple) else result  # (train, validation) since 2025
    if group is not None:
        _dataset_batches[:] = [len(group)]
    if _last_read and group is not None:
        read_args, parser = _last_read
        try:
            arguments.check_epoch_run(read_args, len(group))
        except ValueError as error:
            parser.error(str(error))
    return result


def build_or_delegate(original, args, optimizer, num_processes):
    """Around the host's scheduler factory: a floored schedule, or the host's own for anything
    that is not ours (schedule-free dummy, adafactor, custom types, piecewise_constant, ...)."""
    request = arguments.read_request(args)
    if request is None:
        return original(args, optimizer, num_processes)
    if request.waits_for_epochs():
        request = dataclasses.replace(request, updates_per_epoch=updates_per_epoch(args, num_processes))
    names = None
    try:
        if text_encoder.asked(request.values):
            flag = text_encoder.flag_of(request.values)
            names = group_names(args, optimizer, flag)
            request = dataclasses.replace(request, te_groups=text_encoder_groups(names, flag))
        scheduler = request.build(optimizer, num_processes)
    except options.OptionError as error:  # what needed the epochs: known only now where no dataset hook ran
        prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "sdsched-plugin"
        print(f"{prog}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None
    logger.info(f"sdsched-plugin: {scheduler.sdsched}")
    if text_encoder.asked(scheduler.sdsched):
        line = text_encoder.describe(scheduler.sdsched, num_processes, request.updates_per_epoch, names)
        (logger.warning if text_encoder.never_stops(scheduler.sdsched, num_processes) else logger.info)(f"sdsched-plugin: {line}")
    from .. import __version__

    _built[:] = [saved.record_of(args, scheduler.sdsched, num_processes, __version__)]
    return scheduler


def group_names(args, optimizer, flag: str) -> list[str]:
    """The names of the optimizer's param groups: train_network.py's own ``lr_descriptions`` (what it
    logs as lr/textencoder, lr/unet ...: every network module names its groups there), read from
    the frame that asks for the scheduler, because sd-scripts passes them nowhere else; without
    them, the groups ``schedule.param_groups`` reads from the arguments, where their count matches."""
    count = len(optimizer.param_groups)
    frame = sys._getframe(1)
    for _ in range(6):  # build_or_delegate, a host's wrapper around it, the patched function, the training script's frame
        if frame is None:
            break
        names = frame.f_locals.get("lr_descriptions")
        if isinstance(names, (list, tuple)) and len(names) == count and all(isinstance(name, str) for name in names):
            return list(names)
        frame = frame.f_back
    names = [name for name, _ in param_groups.param_groups(args)]
    if len(names) != count:
        raise options.OptionError(
            flag,
            f"{count} param groups",
            f"a run whose param groups the plugin can name (the arguments give {len(names)}: {', '.join(names) or 'none'});"
            " train_network.py with a network module that names its groups, train_db.py, fine_tune.py, sdxl_train.py, sd3_train.py",
            f"プラグインがパラメータグループを特定できる実行(引数からは {len(names)} 個)",
        )  # fmt: skip
    return names


def text_encoder_groups(names: list[str], flag: str) -> tuple[int, ...]:
    """The indices of the groups (``names``) that train a text encoder; none: one warning that the
    text encoder's flags have no effect in this run (musubi-tuner, --network_train_unet_only, ...)."""
    indices = text_encoder.group_indices(names, flag)
    if not indices:
        arguments.warn_once(
            f"sdsched-plugin: no param group of this run trains a text encoder ({', '.join(names)}): the text encoder's"
            " flags (--lr_scheduler_te_*) have no effect / テキストエンコーダーを学習するパラメータグループがないため、"
            "--lr_scheduler_te_* は使われません"
        )
    return indices


# The length of the dataset group the host built last (every process's batches of one epoch).
_dataset_batches: list[int] = []


def updates_per_epoch(args, num_processes: int) -> int | None:
    """Optimizer updates per epoch, for --lr_scheduler_cycle_epochs: from the dataset group the
    hook saw, with sd-scripts' arithmetic; else from an epoch-based run's step count (the host
    computed it as epochs x updates per epoch); else unknown."""
    accumulation = getattr(args, "gradient_accumulation_steps", 1) or 1
    if _dataset_batches:
        from ..schedule.steps import run_steps

        return run_steps(_dataset_batches[0], num_processes, accumulation)[1]
    epochs, total = getattr(args, "max_train_epochs", None), getattr(args, "max_train_steps", None)
    return total // epochs if epochs and total else None


# The schedule this process built (saved.record_of's text), for the metadata of every model it saves.
_built: list[str] = []


def add_schedule_to_metadata(original, *args, **kwargs):
    """Around the host's model-metadata builder (sd-scripts' get_sai_model_spec, which every save
    path merges into the file's metadata): our key joins, beside sd-scripts' own keys, when this
    process built a schedule of ours; not with --no_metadata."""
    metadata = original(*args, **kwargs)
    if _built and isinstance(metadata, dict) and not _no_metadata(args, kwargs):
        metadata[saved.KEY] = _built[0]
    return metadata


def _no_metadata(args, kwargs) -> bool:
    """--no_metadata, from the builder's own ``args`` (sd-scripts passes them), else from the
    arguments this process read (musubi-tuner's builder takes none)."""
    train_args = kwargs.get("args", args[1] if len(args) > 1 and hasattr(args[1], "__dict__") else None)
    if train_args is None:
        train_args = training_args()
    return bool(getattr(train_args, "no_metadata", False))


def add_schedule_to_metadata_object(original, *args, **kwargs):
    """The same around sd-scripts' get_sai_model_spec_dataclass (v0.10 and later), whose caller
    turns the object into the metadata with ``to_metadata_dict()``: the object's class becomes a
    subclass whose ``to_metadata_dict`` adds our key (a field would be prefixed "modelspec.")."""
    spec = original(*args, **kwargs)
    if _built and hasattr(spec, "to_metadata_dict") and not _no_metadata(args, kwargs):
        record, base = _built[0], type(spec)

        class WithSchedule(base):
            def to_metadata_dict(self):
                return {**super().to_metadata_dict(), saved.KEY: record}

        WithSchedule.__name__ = base.__name__
        spec.__class__ = WithSchedule
    return spec


def warn_not_patched(name: str, why: str, supported: str = "") -> None:
    """The one line for a host module the plugin cannot patch: a floor is never ignored silently."""
    en = f"; supported: {supported}" if supported else ""
    ja = f"(対応版: {supported})" if supported else ""
    logger.warning(
        f"sdsched-plugin: {name} {why}; not patched, the floored schedules are off{en}"
        f" / {name} にパッチを当てられないため、下限付きスケジューラは使えません{ja}"
    )


@dataclass(frozen=True)
class Patch:
    owner: object  # the module or class that holds the function
    name: str
    params: tuple[str, ...]  # the positional parameters the host's own function has
    wrapper: Callable
    method: bool = False  # an instance method: the wrapper gets it bound, so it reads like a function
    prefix: bool = False  # params are the first ones only (a GUI class whose later parameters grew by release)

    def original(self):
        function = getattr(self.owner, self.name, None)
        while hasattr(function, "__wrapped__"):  # our own wrapper (or another patcher's) from before
            function = function.__wrapped__
        return function

    def mismatch(self) -> str | None:
        code = getattr(self.original(), "__code__", None)
        if code is None:
            return f"it has no function {self.name}()"
        have = code.co_varnames[: code.co_argcount]
        if (have[: len(self.params)] if self.prefix else have) != self.params:
            return f"{self.name}{have} does not take {self.params}"
        return None

    def is_applied(self) -> bool:
        return getattr(getattr(self.owner, self.name, None), "sdsched_patched", False)

    def patched(self):
        original, wrapper = getattr(self.owner, self.name), self.wrapper
        if self.method:

            @functools.wraps(original)  # keeps name, doc and __wrapped__ = original
            def patched(instance, *args, **kwargs):
                return wrapper(functools.partial(original, instance), *args, **kwargs)

        else:

            @functools.wraps(original)
            def patched(*args, **kwargs):
                return wrapper(original, *args, **kwargs)

        patched.sdsched_patched = True
        return patched


# (owner, name, original, our wrapper): uninstall() restores in reverse order
_undo: list[tuple[object, str, object, object]] = []


def install(patches: list[Patch], host: str, supported: str = "") -> bool:
    """Apply every patch, or none: returns False, with one warning, when a target is not what
    the host's own code looks like (``supported``: the host versions the warning names)."""
    for patch in patches:
        why = patch.mismatch()
        if why is not None:
            warn_not_patched(getattr(patch.owner, "__name__", patch.owner), f"is not {host} ({why})", supported)
            return False
    for patch in patches:
        if patch.is_applied():
            continue
        original, wrapped = getattr(patch.owner, patch.name), patch.patched()
        setattr(patch.owner, patch.name, wrapped)
        _undo.append((patch.owner, patch.name, original, wrapped))
    return True


def uninstall() -> None:
    """Restore every original. Idempotent: the stack is emptied, a second call does nothing.
    An attribute replaced since (by a reload, or by someone else) is left alone."""
    while _undo:
        owner, name, original, wrapped = _undo.pop()
        if getattr(owner, name, None) is wrapped:
            setattr(owner, name, original)


def uninstall_patch(owner, name: str) -> None:
    """Restore one patched attribute now (a patch that has done its one job)."""
    for index in range(len(_undo) - 1, -1, -1):
        entry_owner, entry_name, original, wrapped = _undo[index]
        if entry_owner is owner and entry_name == name:
            del _undo[index]
            if getattr(owner, name, None) is wrapped:
                setattr(owner, name, original)
            return


def is_installed(patches: list[Patch]) -> bool:
    return all(patch.is_applied() for patch in patches)


