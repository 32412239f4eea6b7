"""What every host trainer of the sd-scripts family shares: our flags, and reading a parsed
argument namespace (flags, TOML, ``--lr_scheduler_args``) once into a ``Request``: the schedule
asked for, of whatever kind (ours to build, sd-scripts' own, the optimizer's).

Host modules (``sd_scripts``) only decide *where* to call this; *what* the flags mean lives
here, once. The ``sdsched`` command line uses the same reading, so a preview cannot disagree
with training. Imports the registry (and so torch) only when a schedule name is looked up.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from dataclasses import dataclass, field

from . import options, registry, text_encoder
from .floor import warmup_steps_from

logger = logging.getLogger("sdsched_plugin")

HOOK_PREFIX = "sdsched_plugin:"
DOTTED_PREFIX = "sdsched_plugin."  # --lr_scheduler_type=sdsched_plugin.CLASS: sd-scripts imports the class itself
# Stock sd-scripts names that --lr_scheduler_min_value floors (as NAME_floor) instead of ignoring.
FLOORED_STOCK_NAMES = ("linear", "cosine", "cosine_with_restarts", "polynomial")
MIN_VALUE_FLAG = "--lr_scheduler_min_value"
# The kohya_ss GUI's field for the floor (hosts.kohya_gui), named by the message of a floored name without one
GUI_FLOOR_LABEL = "Min LR (floor)"
# Our flags besides the min value: the restart controls of cosine_with_restarts_floor, with help
# in sd-scripts' style. Each is named --lr_scheduler_<key> after its constructor keyword.
RESTART_FLAGS = {
    "cycle_decay": (
        "peak of restart cycle k = max(min value, G**k), 0 < G <= 1 (cosine_with_restarts_floor)"
        " / k 番目のサイクルの山 = max(下限, G**k)、0 < G <= 1"
    ),
    "cycle_mul": (
        "each restart cycle is C times as long as the one before, C >= 1 (cosine_with_restarts_floor)"
        " / 各サイクルの長さを前のサイクルの C 倍にする(C >= 1)"
    ),
    "restart_warmup_steps": (
        "linear ramp from the floor to the peak at each restart: steps, or a ratio (< 1) of the cycle"
        " / リスタートごとに下限から山まで直線的に上げるステップ数、またはサイクル長に対する比率(1 未満)"
    ),
    "floor_mode": (
        "rescale (default): floor + (peak - floor) * curve; clamp: max(floor, peak * curve)"
        " / rescale(既定): 下限 + (山 - 下限) * カーブ、clamp: max(下限, 山 * カーブ)"
    ),
    "cycle_epochs": (
        "cycle length in epochs: every restart on an epoch's first step (with cycle_mul: whole epochs); num_cycles follows"
        " (cosine_with_restarts_floor, rex_floor) / サイクルの長さ(エポック数)。リスタートは必ずエポックの最初のステップ"
    ),
}
# The text encoder's own schedule (schedule.text_encoder), for every floored name and the four
# stock names it floors: flag --lr_scheduler_<key>.
TE_FLAGS = {
    "te_min_value": (
        "floor of the text encoder's param groups (0-1); the U-Net's keep --lr_scheduler_min_value (sdsched-plugin)"
        " / テキストエンコーダーのパラメータグループの下限(0〜1)。U-Net は --lr_scheduler_min_value のまま"
    ),
    "te_stop_steps": (
        "the text encoder trains N optimizer steps (or a ratio < 1 of the run), its LR is 0 after them (sdsched-plugin)"
        " / テキストエンコーダーは N ステップ(または全体に対する 1 未満の比率)だけ学習し、その後は学習率 0"
    ),
    "te_stop_epochs": (
        "the text encoder trains only in the first E epochs, its LR is 0 after them (sdsched-plugin)"
        " / テキストエンコーダーは最初の E エポックだけ学習し、その後は学習率 0"
    ),
}
# constructor key -> the namespace attribute of the flag that gives it
KEY_DESTS = {
    "min_value": "lr_scheduler_min_value",
    "num_cycles": "lr_scheduler_num_cycles",
    "power": "lr_scheduler_power",
    **{key: f"lr_scheduler_{key}" for key in RESTART_FLAGS},
    **{key: f"lr_scheduler_{key}" for key in TE_FLAGS},
}

MIN_VALUE_HELP = (
    "minimum LR multiplier (the floor, 0-1, e.g. 0.5) for linear, cosine, cosine_with_restarts, polynomial"
    " and their *_floor variants: min + (1 - min) * curve after warmup (sdsched-plugin)"
    " / 学習率の倍率の下限(0〜1、例: 0.5)。linear, cosine, cosine_with_restarts, polynomial と *_floor で有効:"
    " ウォームアップ後は min + (1 - min) * カーブ (sdsched-plugin)"
)
SCHEDULER_HELP_SUFFIX = (
    " | floored (sdsched-plugin): linear_floor, cosine_floor, cosine_with_restarts_floor, polynomial_floor, rex_floor"
    " with --lr_scheduler_min_value; rex (REX, floor 0 unless given) / 下限付き: 同左(--lr_scheduler_min_value と併用)、rex(REX)"
)

_warned: set[str] = set()


def warn_once(message: str) -> None:
    """Validation runs both when the arguments are read and when the scheduler is built."""
    if message not in _warned:
        _warned.add(message)
        logger.warning(message)


def argparse_type(convert):
    """An argparse ``type=`` from an option converter: argparse names the flag itself, so the
    message it shows is the converter's detail without the flag."""

    def read(text):
        try:
            return convert(text)
        except options.OptionError as error:
            raise argparse.ArgumentTypeError(error.detail) from None

    read.__name__ = convert.__name__
    return read


def add_flags(parser: argparse.ArgumentParser) -> None:
    """Add our flags to a host parser that already has sd-scripts' scheduler flags. Never twice,
    and never over a flag the host itself has (a future sd-scripts could add one)."""
    actions = parser._option_string_actions  # argparse has no public lookup by option string
    if MIN_VALUE_FLAG not in actions:
        parser.add_argument(MIN_VALUE_FLAG, type=argparse_type(options.min_value), default=None, help=MIN_VALUE_HELP)
    for key, help_text in {**RESTART_FLAGS, **TE_FLAGS}.items():
        flag = options.OPTIONS[key].flag
        if flag not in actions:
            parser.add_argument(flag, type=argparse_type(options.OPTIONS[key].convert), default=None, help=help_text)
    scheduler = actions.get("--lr_scheduler")
    if scheduler is not None and scheduler.help and SCHEDULER_HELP_SUFFIX not in scheduler.help:
        scheduler.help += SCHEDULER_HELP_SUFFIX


# What a Request is: the kinds of schedule the arguments can ask for.
FLOORED = "floored"  # one of ours (``cls``): built by the plugin
STOCK = "stock"  # one of sd-scripts' own names: sd-scripts builds it
DOTTED = "dotted"  # --lr_scheduler_type=sdsched_plugin.CLASS: sd-scripts builds the class from --lr_scheduler_args
CUSTOM = "custom"  # another --lr_scheduler_type: sd-scripts' business
OPTIMIZER = "optimizer"  # the optimizer sets the LR (schedule-free, Adafactor): no curve
MUSUBI_REX = "musubi_rex"  # musubi-tuner's own rex (RexLR): musubi-tuner builds it; the preview draws it (stock.musubi_rex)


@dataclass(frozen=True)
class Request:
    """The schedule the arguments ask for, every value read and checked once: training builds
    it (``FLOORED``) or hands it to sd-scripts; the preview draws it, whatever its kind."""

    cls: type | None  # FLOORED, DOTTED: the scheduler class (the preview's: its torch-free spec)
    values: dict  # constructor keywords from the flags, --lr_scheduler_args applied over them
    lr_warmup_steps: int | float = 0
    max_train_steps: int | None = None
    overrides: dict = field(default_factory=dict)
    # False with --max_train_epochs before the host has turned the epochs into max_train_steps
    steps_known: bool = True
    kind: str = FLOORED
    label: str = ""  # the name the preview shows
    # STOCK, read for the preview: stock.sd_scripts_stock's keywords but the (process-scaled) total
    stock: dict = field(default_factory=dict)
    note: str | None = None  # OPTIMIZER: why there is no curve
    # optimizer updates per epoch, where the run's epochs are known (the host's dataset group, the
    # preview's count): what --lr_scheduler_cycle_epochs turns into steps
    updates_per_epoch: int | None = None
    # the param groups that train a text encoder, where the text encoder has a schedule of its own:
    # the host's (built optimizer) or the preview's (schedule.param_groups)
    te_groups: tuple | None = None

    def kwargs(self, num_processes: int) -> dict:
        """Constructor keywords, with the step counts as sd-scripts computes them: the total is
        scaled by the processes (accelerate steps the scheduler once per process), a float
        warmup is a ratio of that total, an int warmup is taken as it is. DOTTED: the
        --lr_scheduler_args alone, as sd-scripts' unpatched path passes them."""
        if self.kind == DOTTED:
            return dict(self.values)
        total = self.overrides.get("num_training_steps")
        if total is None:
            total = self.max_train_steps * num_processes
        warmup = self.overrides.get("num_warmup_steps")
        if warmup is None:
            warmup = warmup_steps_from(self.lr_warmup_steps, total)
        kwargs = {**self.values, "num_training_steps": total, "num_warmup_steps": warmup}
        if self.values.get("cycle_epochs") is not None and self.updates_per_epoch and "epoch_steps" not in self.overrides:
            kwargs["epoch_steps"] = self.updates_per_epoch * num_processes  # the scheduler steps once per process
        if text_encoder.asked(self.values):
            stop = text_encoder.stop_at(self.values, total, num_processes, self.updates_per_epoch)
            if stop is not None:
                kwargs["te_stop_at"] = stop
            if self.te_groups is not None:
                kwargs["te_groups"] = self.te_groups
        return kwargs

    def waits_for_epochs(self) -> bool:
        """--lr_scheduler_cycle_epochs or --lr_scheduler_te_stop_epochs before the epoch's length is
        known (the dataset group not built yet)."""
        if self.updates_per_epoch:
            return False
        cycles = self.values.get("cycle_epochs") is not None and "epoch_steps" not in self.values
        return cycles or self.values.get("te_stop_epochs") is not None

    def check(self, num_processes: int) -> None:
        """Every cross-value check the scheduler's constructor makes, without an optimizer."""
        if (self.steps_known or "num_training_steps" in self.overrides) and not self.waits_for_epochs():
            self.cls.settings(**self.kwargs(num_processes))

    def build(self, optimizer, num_processes: int):
        return self.cls(optimizer, **self.kwargs(num_processes))


def _value(args, dest: str, convert, flag: str | None = None):
    """Read one attribute through its converter (TOML values arrive unconverted) and store the
    converted value back, so the rest of the host sees the same value we use."""
    value = getattr(args, dest, None)
    if value is None:
        return None
    value = convert(value, flag or f"--{dest}")
    setattr(args, dest, value)
    return value


def world_size() -> int:
    """The process count before accelerate is up: ``accelerate launch`` sets WORLD_SIZE."""
    try:
        return max(1, int(os.environ.get("WORLD_SIZE", "1")))
    except ValueError:
        return 1


def read_request(args, pure: bool = False) -> Request | None:
    """The floored schedule the arguments ask for, or None when the schedule is not ours
    (training's question; ``read_schedule`` answers it for every kind)."""
    request = read_schedule(args, pure)
    return request if request.kind == FLOORED else None


def read_schedule(args, pure: bool = False, host: str = "sd-scripts") -> Request:
    """The schedule the arguments ask for, of whatever kind: the one place that reads the flags,
    the TOML and ``--lr_scheduler_args`` (each token once, by the meaning of the schedule it is
    for). ``pure``: the preview's reading, which gives our own schedules as torch-free specs,
    says when the optimizer sets the LR, and reads what shapes sd-scripts' own curves (training
    leaves those to sd-scripts, which accepts more than a curve can be drawn from).

    Raises OptionError (a ValueError) for bad values and registry.UnknownSchedule for a name
    that neither we nor sd-scripts know; warns once when the min value is given with a
    schedule it cannot floor, so it is never ignored silently.
    """
    name = _text(args, "lr_scheduler", "--lr_scheduler")
    scheduler_type = _text(args, "lr_scheduler_type", "--lr_scheduler_type")
    label = scheduler_type or name
    if pure:
        note = _optimizer_note(args, name, scheduler_type)
        if note is not None:
            return Request(None, {}, kind=OPTIMIZER, label=label, note=note)
    min_value = _value(args, "lr_scheduler_min_value", options.min_value)
    tokens = scheduler_args_of(args)
    if is_schedule_free(args):
        if min_value is not None or registry.has(name) or scheduler_type.startswith(HOOK_PREFIX):
            warn_once(
                "sdsched-plugin: schedule-free optimizers use no LR scheduler; the floored schedule is not used"
                " / スケジュールフリーのオプティマイザーは学習率スケジューラを使わないため、下限付きスケジュールは使われません"
            )
        return Request(None, {}, kind=OPTIMIZER, label=label)
    if host == "musubi" and name.lower() == "rex" and not scheduler_type:
        return _musubi_rex(args, tokens)
    lookup = registry.spec if pure else registry.get
    keys = {str(token).partition("=")[0].strip() for token in tokens}  # which keys, not yet their values
    floor_when_absent = None  # the min value of a floored request that gives none (None: the name's own rule)
    if scheduler_type.startswith(HOOK_PREFIX):
        cls = lookup(scheduler_type[len(HOOK_PREFIX) :], "--lr_scheduler_type")
    elif scheduler_type:
        _check_custom_type(scheduler_type)
        _refuse_te_keys(args, keys, f"--lr_scheduler_type={scheduler_type}")
        _warn_not_floored(min_value, f"--lr_scheduler_type={scheduler_type}", args)
        if pure and scheduler_type.startswith(DOTTED_PREFIX):
            return _dotted(scheduler_type, tokens)
        return Request(
            None, {"tokens": list(tokens)}, kind=CUSTOM, label=label, lr_warmup_steps=_value(args, "lr_warmup_steps", options.warmup) or 0,
            max_train_steps=_value(args, "max_train_steps", options.training_steps), steps_known=getattr(args, "max_train_epochs", None) is None,
        )  # fmt: skip
    elif name in FLOORED_STOCK_NAMES and (min_value is not None or "min_value" in keys or _given_te_keys(args, keys)):
        cls = lookup(name + "_floor", "--lr_scheduler")
        if min_value is not None or "min_value" in keys:
            label = f"{name} (floored)"
        else:  # floored only for the text encoder's schedule: floor 0 keeps the stock curve's floats
            label, floor_when_absent = f"{name} {TE_ON_ITS_OWN}", 0.0
    elif name in CONSTANT_NAMES and _given_te_keys(args, keys):
        return _constant_with_text_encoder(args, name, lookup, tokens, keys)
    elif name not in _static_stock_names() and registry.has(name):  # sd-scripts' own names are never ours
        cls = lookup(name, "--lr_scheduler")
    else:
        check_stock_name(name)  # before any warning: an unknown name is the one thing to say
        _refuse_te_keys(args, keys, f"--lr_scheduler={name}")
        _warn_not_floored(min_value, f"--lr_scheduler={name}", args)
        return Request(None, {}, kind=STOCK, label=label, stock=_stock_keywords(args, tokens) if pure else {})
    return _floored(args, cls, label, min_value, tokens, floor_when_absent)


# sd-scripts' constant names, which take the text encoder's stop as cosine_floor at floor 1 (the same floats:
# diffusers' warmup ramp step / max(1, warmup), then 1 + 0 x cosine = 1)
CONSTANT_NAMES = ("constant", "constant_with_warmup")
TE_ON_ITS_OWN = "(text encoder on its own)"


def _constant_with_text_encoder(args, name: str, lookup, tokens: list, keys) -> Request:
    """``--lr_scheduler=constant`` (sd-scripts' default) or ``constant_with_warmup`` with a text encoder
    stop: the U-Net's curve is the constant one, the text encoder's the same until its stop. A floor of
    its own has nothing to floor on a constant curve, and constant takes no warmup (sd-scripts stops
    on one after loading the model): both refused here, before."""
    if "te_min_value" in _given_te_keys(args, keys):
        raise options.OptionError(
            options.OPTIONS["te_min_value"].flag, f"--lr_scheduler={name}",
            "a decaying schedule (constant has nothing to floor); with constant, --lr_scheduler_te_stop_steps or _epochs",
            "減衰するスケジュール(constant には下限がありません)。constant では --lr_scheduler_te_stop_steps か _epochs",
        )  # fmt: skip
    warmup = _value(args, "lr_warmup_steps", options.warmup) or 0
    if name == "constant" and warmup:
        raise options.OptionError(
            "--lr_warmup_steps", warmup, "0 with --lr_scheduler=constant (sd-scripts refuses a warmup for it); or constant_with_warmup",
            "--lr_scheduler=constant では 0(sd-scripts はウォームアップを受け付けません)。または constant_with_warmup",
        )  # fmt: skip
    request = _floored(args, lookup("cosine_floor", "--lr_scheduler"), f"{name} {TE_ON_ITS_OWN}", None, tokens, 1.0)
    return dataclasses.replace(request, values={**request.values, "min_value": 1.0})  # a --lr_scheduler_min_value too: constant stays constant


def _floored(args, cls, label: str, min_value, tokens: list, floor_when_absent: float | None = None) -> Request:
    overrides = options.parse_key_values(tokens, cls.keys())
    values = {}
    for key in cls.keys():
        dest = KEY_DESTS.get(key)
        if dest is not None:
            value = _value(args, dest, options.OPTIONS[key].convert)
            if value is not None:
                values[key] = value
    _warn_unused_restart_flags(args, cls)
    _warn_both_min_values(min_value, overrides)
    values.update({k: v for k, v in overrides.items() if k not in ("num_training_steps", "num_warmup_steps")})
    if "min_value" not in values:
        if floor_when_absent is not None:
            values["min_value"] = floor_when_absent
        elif cls.defaults.get("min_value") is None:  # rex: floor 0 unless given
            values["min_value"] = _fallback_min_value(args, cls)
    return Request(
        cls=cls,
        values=values,
        lr_warmup_steps=_value(args, "lr_warmup_steps", options.warmup) or 0,
        max_train_steps=_value(args, "max_train_steps", options.training_steps),
        overrides=overrides,
        steps_known=getattr(args, "max_train_epochs", None) is None,
        label=label,
    )



def _musubi_rex(args, tokens: list) -> Request:
    """musubi-tuner's own ``--lr_scheduler=rex``, read as its get_lr_scheduler reads it (for the preview)."""
    from . import stock

    kwargs = stock.parse_scheduler_args(tokens)
    unknown = sorted(set(kwargs) - {"rex_alpha", "rex_beta"})
    if unknown:
        raise options.OptionError(stock.SCHEDULER_ARGS, unknown[0], "rex_alpha or rex_beta (musubi-tuner's RexLR)", "rex_alpha か rex_beta(musubi-tuner の RexLR)")
    values = {
        "learning_rate": options.learning_rate(getattr(args, "learning_rate", None)),
        "min_lr_ratio": _value(args, "lr_scheduler_min_lr_ratio", options.min_value, "--lr_scheduler_min_lr_ratio"),
        "rex_alpha": options.rex_alpha(kwargs.get("rex_alpha", 0.1)),
        "rex_beta": options.rex_beta(kwargs.get("rex_beta", 0.9)),
    }
    return Request(
        None, values, kind=MUSUBI_REX, label="rex (musubi-tuner's own)", lr_warmup_steps=_value(args, "lr_warmup_steps", options.warmup) or 0,
        max_train_steps=_value(args, "max_train_steps", options.training_steps), steps_known=getattr(args, "max_train_epochs", None) is None,
    )  # fmt: skip


def _dotted(scheduler_type: str, tokens: list) -> Request:
    """``--lr_scheduler_type=sdsched_plugin.CosineWithRestartsFloor``: sd-scripts' unpatched
    path passes only ``--lr_scheduler_args`` to the class, step counts included, as given."""
    from . import specs

    spec = specs.by_class_name(scheduler_type[len(DOTTED_PREFIX) :])
    if spec is None:
        known = ", ".join(DOTTED_PREFIX + name for name in specs.SPECS)
        raise options.OptionError("--lr_scheduler_type", scheduler_type, f"one of: {known}", f"次のいずれか: {known}")
    return Request(spec, options.parse_key_values(tokens, spec.keys()), kind=DOTTED, label=scheduler_type)


def _optimizer_note(args, name: str, scheduler_type: str) -> str | None:
    """Why there is no curve to draw when the optimizer sets the LR (``stock.optimizer_sets_lr``)."""
    from . import stock

    return stock.optimizer_sets_lr(
        name,
        str(getattr(args, "optimizer_type", "") or ""),
        stock.parse_scheduler_args(getattr(args, "optimizer_args", None) or [], "--optimizer_args"),
        scheduler_type,
    )


def _stock_keywords(args, tokens: list) -> dict:
    """What sd-scripts' get_scheduler_fix reads for one of its own names, as
    ``stock.sd_scripts_stock`` takes it (the total aside: it depends on the processes)."""
    from . import stock

    return dict(
        lr_warmup_steps=options.warmup(getattr(args, "lr_warmup_steps", 0) or 0),
        lr_decay_steps=options.warmup(getattr(args, "lr_decay_steps", 0) or 0, "--lr_decay_steps"),
        num_cycles=options.num_cycles(getattr(args, "lr_scheduler_num_cycles", 1)),
        power=options.power(getattr(args, "lr_scheduler_power", 1.0)),
        timescale=getattr(args, "lr_scheduler_timescale", None),
        min_lr_ratio=getattr(args, "lr_scheduler_min_lr_ratio", None),
        scheduler_kwargs=stock.parse_scheduler_args(tokens),
        # transformers' polynomial reads optimizer.defaults["lr"]: sd-scripts builds the optimizer with --learning_rate
        lr_init=options.learning_rate(getattr(args, "learning_rate", None), "--learning_rate"),
    )


def is_schedule_free(args) -> bool:
    """sd-scripts' schedule-free optimizers (RAdamScheduleFree, AdamWScheduleFree, ...) get a
    dummy scheduler: the optimizer sets the LR."""
    return str(getattr(args, "optimizer_type", "") or "").lower().endswith("schedulefree")


def _text(args, dest: str, flag: str) -> str:
    """A schedule name: text. A TOML number (``lr_scheduler = 5``) is named, not crashed on."""
    value = getattr(args, dest, None)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise options.OptionError(
            flag, value, 'a schedule name in quotes, e.g. "cosine_with_restarts_floor"', 'スケジューラ名を文字列で指定してください(例: "cosine_with_restarts_floor")'
        )
    return value.strip()


SCHEDULER_ARGS_FORM_EN = 'a list of key=value texts; in a TOML file: lr_scheduler_args = ["min_value=0.5"]'
SCHEDULER_ARGS_FORM_JA = 'key=value の文字列のリスト。TOML では lr_scheduler_args = ["min_value=0.5"] のように書きます'


def scheduler_args_of(args) -> list:
    """``--lr_scheduler_args`` as a list. A TOML string or table would be iterated character by
    character (sd-scripts crashes on it after loading the model): refuse it with the list form."""
    # sd-scripts flattens every TOML table into top-level keys, so a table
    # ``[lr_scheduler_args]`` (or an inline one) arrives as bare ``min_value``, ``num_cycles``...
    tabled = {key: getattr(args, key) for key in options.OPTIONS if getattr(args, key, None) is not None}
    if tabled:
        raise options.OptionError("--lr_scheduler_args", tabled, SCHEDULER_ARGS_FORM_EN + " (not a table)", SCHEDULER_ARGS_FORM_JA + "(テーブルではなく)")
    value = getattr(args, "lr_scheduler_args", None)
    if value is None:
        return []
    if not isinstance(value, (list, tuple)) or not all(isinstance(token, str) for token in value):
        raise options.OptionError("--lr_scheduler_args", value, SCHEDULER_ARGS_FORM_EN, SCHEDULER_ARGS_FORM_JA)
    return list(value)


def _static_stock_names() -> tuple[str, ...]:
    from . import stock

    return stock.SD_SCRIPTS_NAMES


def stock_names() -> list[str]:
    """Every name sd-scripts' get_scheduler_fix builds a curve for in this environment: ours
    (stock.SD_SCRIPTS_NAMES) less what the transformers in front of it lacks, where training
    has imported it already (the preview's fast path never does)."""
    from . import stock

    names = set(stock.SD_SCRIPTS_NAMES)
    enum = getattr(sys.modules.get("transformers.optimization"), "SchedulerType", None)
    if enum is not None:
        names &= {member.value for member in enum} | {"piecewise_constant"}
    return sorted(names)


def check_stock_name(name: str) -> None:
    """An unknown --lr_scheduler stops when the arguments are read, with the closest names of
    ours and sd-scripts' (sd-scripts itself fails only after the model has loaded)."""
    from . import stock

    if name in stock_names() or name.startswith("adafactor"):
        return
    if name in stock.SD_SCRIPTS_CANNOT_BUILD:
        raise stock.unknown_name(name)
    raise registry.UnknownSchedule(registry.unknown_message(name, "--lr_scheduler", also=stock_names()), "--lr_scheduler")


def _check_custom_type(scheduler_type: str) -> None:
    """``--lr_scheduler_type=cosine_floor``: sd-scripts would look for it in torch.optim."""
    if "." not in scheduler_type and registry.has(scheduler_type):
        raise options.OptionError(
            "--lr_scheduler_type",
            scheduler_type,
            f"{HOOK_PREFIX}{scheduler_type} (our schedules take the prefix), or --lr_scheduler={scheduler_type}",
            f"{HOOK_PREFIX}{scheduler_type}(接頭辞が必要です)、または --lr_scheduler={scheduler_type}",
        )


def _warn_both_min_values(min_value, overrides: dict) -> None:
    if min_value is not None and "min_value" in overrides and overrides["min_value"] != min_value:
        warn_once(
            f"sdsched-plugin: {MIN_VALUE_FLAG}={min_value} and --lr_scheduler_args min_value={overrides['min_value']}"
            f" both given; min_value={overrides['min_value']} from --lr_scheduler_args is used"
            f" / 下限が2か所で指定されています。--lr_scheduler_args の min_value={overrides['min_value']} を使います"
        )


def _fallback_min_value(args, cls) -> float:
    """A _floor name without a min value takes sd-scripts' own --lr_scheduler_min_lr_ratio."""
    ratio = _value(args, "lr_scheduler_min_lr_ratio", options.min_value, "--lr_scheduler_min_lr_ratio")
    if ratio is None:
        raise options.OptionError(
            MIN_VALUE_FLAG,
            None,
            f"{cls.name} needs a floor: add {MIN_VALUE_FLAG}=0.5 (or a value from 0 to 1; in --lr_scheduler_args: min_value=0.5;"
            f" in the kohya_ss GUI: the {GUI_FLOOR_LABEL} field next to LR Scheduler)",
            f"{cls.name} には下限が必要です: {MIN_VALUE_FLAG}=0.5 のように 0〜1 の値を指定してください"
            f"(kohya_ss GUI では LR Scheduler の隣の「{GUI_FLOOR_LABEL}」)",
        )
    return ratio


def _given(args, flags: dict, keys=()) -> list[str]:
    """Which of ``flags``' keys are given, as flags or in --lr_scheduler_args (``keys``)."""
    return [key for key in flags if getattr(args, KEY_DESTS[key], None) is not None or key in keys]


def _given_te_keys(args, keys=()) -> list[str]:
    return _given(args, TE_FLAGS, keys)


def _refuse_te_keys(args, keys, what: str) -> None:
    """The text encoder's own schedule on a curve the plugin does not build: refused, not ignored (its
    LR would run the whole run in silence)."""
    given = _given_te_keys(args, keys)
    if given:
        allowed = f"{', '.join((*FLOORED_STOCK_NAMES, *CONSTANT_NAMES))}, the *_floor schedules, rex (--lr_scheduler=NAME or {HOOK_PREFIX}NAME)"
        raise options.OptionError(
            options.OPTIONS[given[0]].flag, what, f"a schedule the plugin builds: {allowed}",
            f"プラグインが作るスケジュール: {allowed}",
        )  # fmt: skip


def _given_restart_keys(args) -> list[str]:
    return _given(args, RESTART_FLAGS)


def _flags(keys) -> str:
    return ", ".join(options.OPTIONS[key].flag for key in keys)


def _warn_unused_restart_flags(args, cls) -> None:
    unused = [key for key in _given_restart_keys(args) if key not in cls.keys()]
    if unused:
        warn_once(
            f"sdsched-plugin: {_flags(unused)} only shape cosine_with_restarts_floor; no effect with {cls.name}"
            f" / {_flags(unused)} は cosine_with_restarts_floor 専用です({cls.name} では使われません)"
        )


def _warn_not_floored(min_value, what: str, args=None) -> None:
    restart_keys = _given_restart_keys(args) if args is not None else []
    if restart_keys:
        warn_once(
            f"sdsched-plugin: {_flags(restart_keys)} have no effect with {what}: use"
            f" --lr_scheduler=cosine_with_restarts_floor / {_flags(restart_keys)} は {what} では使われません"
        )
    if min_value is not None:
        warn_once(
            f"sdsched-plugin: {MIN_VALUE_FLAG}={min_value} has no effect with {what}: it floors "
            f"{', '.join(FLOORED_STOCK_NAMES)} and the *_floor schedules / "
            f"{MIN_VALUE_FLAG} は {what} では使われません({', '.join(FLOORED_STOCK_NAMES)} と *_floor で有効)"
        )


def check_epoch_run(args, batches: int) -> Request | None:
    """The checks that need the epochs of the run, once the dataset group's length (``batches``,
    every process's batches of one epoch) is known: an epoch-based run's step count, and
    --lr_scheduler_cycle_epochs (a step-based run too)."""
    request = read_schedule(args)
    accumulation = options.training_steps(getattr(args, "gradient_accumulation_steps", 1) or 1, "--gradient_accumulation_steps")
    from .steps import run_steps  # sd-scripts' arithmetic, in one place

    if request.kind == CUSTOM and getattr(args, "max_train_epochs", None) is not None:
        check_custom(request, run_steps(batches, world_size(), accumulation, options.training_steps(args.max_train_epochs, "--max_train_epochs"))[2])
        return None
    if request.kind != FLOORED:
        return None

    epochs = getattr(args, "max_train_epochs", None)
    if epochs is None:
        if not request.waits_for_epochs():
            return None
        request = dataclasses.replace(request, updates_per_epoch=run_steps(batches, world_size(), accumulation)[1])
        request.check(world_size())
        return request

    _, per_epoch, total, _ = run_steps(batches, world_size(), accumulation, options.training_steps(epochs, "--max_train_epochs"))
    request = dataclasses.replace(request, max_train_steps=total, steps_known=True, updates_per_epoch=per_epoch)
    request.check(world_size())
    return request


def check_args(args) -> Request | None:
    """Everything that can be checked before the model loads; the total step count is only
    known here when given as --max_train_steps (with --max_train_epochs the host computes it
    later, and the scheduler's constructor checks it then)."""
    request = read_schedule(args)
    if request.kind == CUSTOM:
        check_custom(request, request.max_train_steps if request.steps_known else None)
        return None
    if request.kind != FLOORED:
        return None
    if text_encoder.asked(request.values):  # a group shared by the U-Net and the text encoder: said before the model loads
        from . import param_groups

        text_encoder.group_indices([name for name, _ in param_groups.param_groups(args)], text_encoder.flag_of(request.values))
    request.check(world_size())
    return request


def check_custom(request: Request, updates: int | None) -> None:
    """A custom --lr_scheduler_type class: sd-scripts refuses a warmup for it, but only after loading
    the model (a traceback): refused here, before. Where the run's length is known, one warning
    when the class's period does not match it (``custom.period_warning``)."""
    from . import custom

    if request.lr_warmup_steps:
        raise options.OptionError(
            "--lr_warmup_steps", request.lr_warmup_steps,
            f"0 with --lr_scheduler_type={request.label}: sd-scripts gives a custom class no warmup and stops on one after loading the model",
            f"--lr_scheduler_type={request.label} では 0(sd-scripts はカスタムクラスにウォームアップを渡さず、モデル読み込み後に止まります)",
        )  # fmt: skip
    if updates:
        kwargs = custom.kwargs_of(request.values.get("tokens", []))
        warning = custom.period_warning(request.label, kwargs, updates * world_size(), world_size())
        if warning:
            warn_once(f"sdsched-plugin: {warning}")
