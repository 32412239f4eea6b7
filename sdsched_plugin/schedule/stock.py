"""sd-scripts' own schedule names, as data: which curve ``get_scheduler_fix`` builds for each
``--lr_scheduler`` name, with which keywords. Standard library only.

One job: the dispatch of real sd-scripts' ``get_scheduler_fix`` (the step counts, the ratio
truncations, ``num_cycles / 2``, the keywords of ``--lr_scheduler_args``), so that the preview
shows the very curve training builds, without torch. One ``Stock`` record per name (as timm's
``OptimInfo``): the keywords sd-scripts passes itself, the ones ``--lr_scheduler_args`` may add,
a settings reader that checks what sd-scripts or the library would refuse or crash on (an
``options.OptionError`` naming the flag), and the builder of the pure curve (``curves``) from
those settings.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from . import curves
from .floor import Curve
from .options import OptionError

SCHEDULER_ARGS = "--lr_scheduler_args"
# transformers names that get_scheduler_fix hands the step counts to, which their functions do
# not take: sd-scripts fails with a TypeError when it builds them.
SD_SCRIPTS_CANNOT_BUILD = {
    "reduce_lr_on_plateau": "it follows a metric, and get_scheduler_fix passes it step counts it does not take",
    "cosine_warmup_with_min_lr": "get_scheduler_fix passes it num_decay_steps, which it does not take",
    "greedy": "it follows a metric, and get_scheduler_fix passes it step counts it does not take",
}
# the flag each keyword that get_scheduler_fix sets itself comes from
SET_BY = {
    "num_warmup_steps": "--lr_warmup_steps",
    "num_training_steps": "--max_train_steps",
    "num_cycles": "--lr_scheduler_num_cycles",
    "power": "--lr_scheduler_power",
    "timescale": "--lr_scheduler_timescale",
    "min_lr_rate": "--lr_scheduler_min_lr_ratio",
    "min_lr_ratio": "--lr_scheduler_min_lr_ratio",
    "num_stable_steps": "--max_train_steps, --lr_warmup_steps and --lr_decay_steps",
    "num_decay_steps": "--lr_decay_steps",
}


@dataclass(frozen=True)
class Given:
    """What get_scheduler_fix reads for a stock curve: the flags, the step counts already in
    scheduler steps (``warmup`` / ``decay``: a ratio truncated, as sd-scripts does), and the
    parsed ``--lr_scheduler_args`` (``last_epoch`` taken out)."""

    num_training_steps: int
    warmup: int
    decay: int
    lr_warmup_steps: int | float  # as given, for the messages
    num_cycles: Any
    power: Any
    timescale: Any
    min_lr_ratio: Any
    lr_init: Any
    kwargs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Stock:
    """One name of sd-scripts' ``--lr_scheduler``: ``read`` gives the settings (every keyword
    the library function receives, its defaults included, and ``lr_init`` where it shapes the
    curve), checked; ``build`` the pure curve from them."""

    name: str
    passed: tuple[str, ...]  # keywords get_scheduler_fix passes itself: refused in --lr_scheduler_args
    extra: tuple[str, ...]  # keywords --lr_scheduler_args may add
    read: Callable[[Given], dict]
    build: Callable[[dict], Curve]


def _arg_flag(key: str) -> str:
    return f"{SCHEDULER_ARGS} {key}"


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _need_number(flag: str, value, minimum=None, *, integer=False, above=False) -> None:
    """A number (an int where ``integer``), at least (or above) ``minimum``."""
    ok = _is_number(value) and (not integer or isinstance(value, int))
    if ok and minimum is not None:
        ok = value > minimum if above else value >= minimum
    if not ok:
        kind_en = "a whole number" if integer else "a number"
        kind_ja = "整数" if integer else "数値"
        bound_en = "" if minimum is None else f" {'>' if above else '>='} {minimum}"
        bound_ja = "" if minimum is None else f"({minimum} {'より大きい' if above else '以上'})"
        raise OptionError(flag, value, f"{kind_en}{bound_en}", f"{kind_ja}{bound_ja}を指定してください")


def _steps(value, total: int, flag: str) -> int:
    """sd-scripts' reading of --lr_warmup_steps / --lr_decay_steps: a float is a ratio of the
    (process-scaled) total, truncated; an int is steps."""
    if isinstance(value, float):
        if not math.isfinite(value) or value < 0:
            raise OptionError(flag, value, "steps (an int >= 0) or a ratio of the run (a float < 1)", "ステップ数(0 以上の整数)または比率(1 未満の小数)")
        return int(value * total)
    _need_number(flag, value, 0, integer=True)
    return value


# --- the settings readers, one per name ---------------------------------------------------------


def _warmup_and_total(given: Given) -> dict:
    return {"num_warmup_steps": given.warmup, "num_training_steps": given.num_training_steps}


def _read_piecewise_constant(given: Given) -> dict:
    """sd-scripts hands it only the --lr_scheduler_args: no warmup, no step counts."""
    rules = given.kwargs.get("step_rules")
    if not isinstance(rules, str):
        raise OptionError(
            _arg_flag("step_rules"),
            rules,
            "a quoted string of value:step rules ending in the last value, e.g. step_rules=\"1:10,0.1:20,0.01\"",
            "value:step の規則を並べ最後の値で終わる引用符付き文字列(例: step_rules=\"1:10,0.1:20,0.01\")",
        )
    try:
        curves.piecewise_constant(rules)
    except (ValueError, AttributeError):
        raise OptionError(
            _arg_flag("step_rules"),
            rules,
            "value:step rules separated by commas, ending in the last value, e.g. \"1:10,0.1:20,0.01\"",
            "カンマ区切りの value:step の規則で、最後は値のみ(例: \"1:10,0.1:20,0.01\")",
        ) from None
    return {"step_rules": rules}


def _read_constant(given: Given) -> dict:
    if given.warmup != 0:
        raise OptionError(
            "--lr_warmup_steps",
            given.lr_warmup_steps,
            "0 with constant (sd-scripts refuses a warmup there; use constant_with_warmup)",
            "constant では 0(ウォームアップは constant_with_warmup で)",
        )
    return {}


def _read_inverse_sqrt(given: Given) -> dict:
    if given.timescale is not None:
        # 0 divides by zero; below 0 takes the square root of a negative number
        _need_number("--lr_scheduler_timescale", given.timescale, 0, above=True)
    return {"num_warmup_steps": given.warmup, "timescale": given.timescale if given.timescale is not None else given.warmup or 10_000}


def _read_cosine_with_restarts(given: Given) -> dict:
    _need_number("--lr_scheduler_num_cycles", given.num_cycles)
    return {**_warmup_and_total(given), "num_cycles": given.num_cycles}


def _read_polynomial(given: Given) -> dict:
    _need_number("--lr_scheduler_power", given.power)
    lr_end, lr_init = given.kwargs.get("lr_end", 1e-7), given.lr_init
    _need_number(_arg_flag("lr_end"), lr_end)
    _need_number("--learning_rate", lr_init)
    if not lr_init > lr_end:
        raise OptionError(
            _arg_flag("lr_end"),
            lr_end,
            f"below the learning rate ({lr_init}): polynomial decays from it to lr_end (default 1e-7)",
            f"学習率({lr_init})より小さい値(polynomial は学習率から lr_end まで減衰します。既定 1e-7)",
        )
    if given.warmup == given.num_training_steps:
        # the lambda divides by (total - warmup) at the step after the last one, which
        # sd-scripts' scheduler reaches: ZeroDivisionError at the end of the run
        raise OptionError(
            "--lr_warmup_steps",
            given.lr_warmup_steps,
            f"fewer warmup steps than training steps ({given.num_training_steps}) with polynomial",
            f"polynomial ではウォームアップを総ステップ数({given.num_training_steps})より少なく",
        )
    return {**_warmup_and_total(given), "power": given.power, "lr_end": lr_end, "lr_init": lr_init}


def _read_cosine_with_min_lr(given: Given) -> dict:
    _need_number("--lr_scheduler_num_cycles", given.num_cycles)
    settings = _warmup_and_total(given)
    min_lr, ratio = given.kwargs.get("min_lr"), given.min_lr_ratio
    if min_lr is not None and ratio is not None:
        raise OptionError(
            _arg_flag("min_lr"),
            min_lr,
            f"only one of --lr_scheduler_min_lr_ratio ({ratio}) and min_lr",
            "--lr_scheduler_min_lr_ratio と min_lr はどちらか一方のみ",
        )
    if min_lr is not None:
        _need_number(_arg_flag("min_lr"), min_lr)
        _need_number("--learning_rate", given.lr_init, 0, above=True)
        rate = min_lr / given.lr_init  # transformers: min_lr / optimizer.defaults["lr"]
        settings.update(min_lr=min_lr, lr_init=given.lr_init)
    elif ratio is None:
        raise OptionError(
            "--lr_scheduler_min_lr_ratio",
            None,
            "a ratio for cosine_with_min_lr, e.g. --lr_scheduler_min_lr_ratio=0.1 (or min_lr=... in --lr_scheduler_args)",
            "cosine_with_min_lr には比率が必要です(例: --lr_scheduler_min_lr_ratio=0.1、または --lr_scheduler_args に min_lr=...)",
        )
    else:
        _need_number("--lr_scheduler_min_lr_ratio", ratio)
        rate = ratio
    return {**settings, "num_cycles": given.num_cycles / 2, "min_lr_rate": rate}


def _read_cosine(given: Given) -> dict:
    cycles = given.kwargs.get("num_cycles", 0.5)  # not --lr_scheduler_num_cycles: sd-scripts does not pass it
    _need_number(_arg_flag("num_cycles"), cycles)
    return {**_warmup_and_total(given), "num_cycles": cycles}


def _read_warmup_stable_decay(given: Given) -> dict:
    """sd-scripts passes the stable steps, not the total: a num_training_steps in the args is
    ignored by transformers (with a warning)."""
    _need_number("--lr_scheduler_num_cycles", given.num_cycles)
    ratio = given.min_lr_ratio if given.min_lr_ratio is not None else 0.0
    _need_number("--lr_scheduler_min_lr_ratio", ratio)
    types = {}
    for key, default in (("warmup_type", "linear"), ("decay_type", "cosine")):
        value = given.kwargs.get(key, default)
        if value not in curves.WSD_TYPES:
            raise OptionError(_arg_flag(key), value, "one of: " + ", ".join(curves.WSD_TYPES), "次のいずれか: " + ", ".join(curves.WSD_TYPES))
        types[key] = value
    return {
        "num_warmup_steps": given.warmup,
        "num_stable_steps": given.num_training_steps - given.warmup - given.decay,
        "num_decay_steps": given.decay,
        **types,
        "min_lr_ratio": ratio,
        "num_cycles": given.num_cycles / 2,
    }


# --- the table ------------------------------------------------------------------------------------
# Every --lr_scheduler name get_scheduler_fix builds a curve for (adafactor:<lr> aside, see
# optimizer_sets_lr). piecewise_constant comes from diffusers, the rest from transformers.

_WARMUP_TOTAL = ("num_warmup_steps", "num_training_steps")

STOCK = {
    info.name: info
    for info in (
        Stock("constant", (), ("last_epoch",), _read_constant, lambda s: curves.constant()),
        Stock(
            "constant_with_warmup", ("num_warmup_steps",), ("last_epoch",), lambda given: {"num_warmup_steps": given.warmup},
            lambda s: curves.constant_with_warmup(s["num_warmup_steps"]),
        ),
        Stock(
            "cosine", _WARMUP_TOTAL, ("num_cycles", "last_epoch"), _read_cosine,
            # transformers' cosine: the min-lr lambda with rate 0.0 (see curves.cosine_with_min_lr)
            lambda s: curves.cosine_with_min_lr(s["num_warmup_steps"], s["num_training_steps"], s["num_cycles"], 0.0),
        ),
        Stock(
            "cosine_with_min_lr", (*_WARMUP_TOTAL, "num_cycles", "min_lr_rate"), ("min_lr", "last_epoch"), _read_cosine_with_min_lr,
            lambda s: curves.cosine_with_min_lr(s["num_warmup_steps"], s["num_training_steps"], s["num_cycles"], s["min_lr_rate"]),
        ),
        Stock(
            "cosine_with_restarts", (*_WARMUP_TOTAL, "num_cycles"), ("last_epoch",), _read_cosine_with_restarts,
            lambda s: curves.cosine_with_hard_restarts(s["num_warmup_steps"], s["num_training_steps"], s["num_cycles"]),
        ),
        Stock(
            "inverse_sqrt", ("num_warmup_steps", "timescale"), ("last_epoch",), _read_inverse_sqrt,
            lambda s: curves.inverse_sqrt(s["num_warmup_steps"], s["timescale"]),
        ),
        Stock(
            "linear", _WARMUP_TOTAL, ("last_epoch",), _warmup_and_total,
            lambda s: curves.linear(s["num_warmup_steps"], s["num_training_steps"]),
        ),
        Stock("piecewise_constant", (), ("step_rules", "last_epoch"), _read_piecewise_constant, lambda s: curves.piecewise_constant(s["step_rules"])),
        Stock(
            "polynomial", (*_WARMUP_TOTAL, "power"), ("lr_end", "last_epoch"), _read_polynomial,
            lambda s: curves.polynomial(s["num_warmup_steps"], s["num_training_steps"], s["lr_end"], s["power"], lr_init=s["lr_init"]),
        ),
        Stock(
            "warmup_stable_decay",
            ("num_warmup_steps", "num_stable_steps", "num_decay_steps", "num_cycles", "min_lr_ratio"),
            ("num_training_steps", "warmup_type", "decay_type", "last_epoch"),
            _read_warmup_stable_decay,
            lambda s: curves.warmup_stable_decay(
                s["num_warmup_steps"], s["num_decay_steps"], num_stable_steps=s["num_stable_steps"], min_lr_ratio=s["min_lr_ratio"],
                num_cycles=s["num_cycles"], warmup_type=s["warmup_type"], decay_type=s["decay_type"],
            ),
        ),
    )
}  # fmt: skip
SD_SCRIPTS_NAMES = tuple(STOCK)


def optimizer_sets_lr(lr_scheduler: str = "", optimizer_type: str = "", optimizer_args: dict | None = None, lr_scheduler_type: str = "") -> str | None:
    """One line (English / 日本語) when sd-scripts' LR comes from the optimizer rather than a
    schedule curve, else None: a schedule-free optimizer (a dummy scheduler, whatever
    ``--lr_scheduler`` says), Adafactor with ``relative_step`` (its default: sd-scripts then sets
    ``--lr_scheduler=adafactor:<lr>`` itself), or an ``adafactor:<lr>`` name. ``optimizer_args``
    is ``--optimizer_args`` as a dict (``relative_step``, ``warmup_init``). Raises OptionError for
    an ``adafactor`` name with another optimizer, which sd-scripts refuses."""
    optimizer = (optimizer_type or "").lower()
    if optimizer.endswith("schedulefree"):
        return (
            f"{optimizer_type} is schedule-free: sd-scripts uses no LR scheduler, the optimizer sets the LR"
            f" / {optimizer_type} はスケジュールフリーです: スケジューラは使われず、学習率はオプティマイザが決めます"
        )
    if lr_scheduler_type:
        return None
    given = dict(optimizer_args or {})
    if optimizer == "adafactor" and (given.get("relative_step", True) or given.get("warmup_init", False)):
        return (
            "Adafactor with relative_step (its default): sd-scripts switches to --lr_scheduler=adafactor, the optimizer sets"
            " the LR / relative_step の Adafactor(既定): スケジューラは adafactor になり、学習率はオプティマイザが決めます"
        )
    if str(lr_scheduler or "").startswith("adafactor"):
        if optimizer != "adafactor":  # sd-scripts asserts the optimizer is transformers' Adafactor
            raise OptionError(
                "--lr_scheduler",
                lr_scheduler,
                "adafactor:<lr> only with --optimizer_type=Adafactor",
                "adafactor:<lr> は --optimizer_type=Adafactor と一緒に使ってください",
            )
        return (
            f"--lr_scheduler={lr_scheduler}: Adafactor's own schedule, the optimizer sets the LR"
            f" / --lr_scheduler={lr_scheduler}: Adafactor 自身のスケジュールで、学習率はオプティマイザが決めます"
        )
    return None


def parse_scheduler_args(tokens, flag: str = SCHEDULER_ARGS) -> dict[str, Any]:
    """sd-scripts' reading of ``--lr_scheduler_args``: ``key=value`` with the value a Python literal
    (``ast.literal_eval``), so strings are quoted: ``decay_type="linear"``. OptionError for what
    sd-scripts fails on."""
    import ast  # only on this path: the curves themselves need none of it

    kwargs = {}
    for token in tokens or ():
        parts = str(token).split("=")
        if len(parts) != 2:
            raise OptionError(
                flag, token, "key=value, one '=' per item, e.g. lr_end=1e-6", "key=value の形(= は 1 つ)。例: lr_end=1e-6"
            )
        key, raw = parts
        try:
            kwargs[key] = ast.literal_eval(raw)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            raise OptionError(
                flag,
                token,
                f"a Python literal after '=': a number, or a quoted string such as {key}=\"{raw}\"",
                f"'=' の後は Python のリテラル(数値、または {key}=\"{raw}\" のように引用符で囲んだ文字列)",
            ) from None
    return kwargs


def unknown_name(name, flag: str = "--lr_scheduler") -> OptionError:
    names = ", ".join(SD_SCRIPTS_NAMES)
    if name in SD_SCRIPTS_CANNOT_BUILD:
        why = SD_SCRIPTS_CANNOT_BUILD[name]
        return OptionError(
            flag,
            name,
            f"a schedule sd-scripts can build ({name}: {why}): {names}",
            f"sd-scripts が作れるスケジューラ({name} は get_scheduler_fix では作れません): {names}",
        )
    return OptionError(flag, name, f"one of: {names}", f"次のいずれかを指定してください: {names}")


def _checked_kwargs(info: Stock, kwargs: dict) -> dict:
    """The --lr_scheduler_args of ``info``: no keyword sd-scripts passes itself, none the function
    does not take, ``last_epoch`` only at its default (taken out)."""
    for key in kwargs:
        if key in info.passed:
            raise OptionError(
                SCHEDULER_ARGS,
                f"{key}={kwargs[key]!r}",
                f"no {key}: sd-scripts passes it to {info.name} from {SET_BY[key]}",
                f"{key} は指定できません({info.name} には sd-scripts が {SET_BY[key]} から渡します)",
            )
        if key not in info.extra:
            raise OptionError(
                SCHEDULER_ARGS,
                f"{key}={kwargs[key]!r}",
                f"keys {info.name} takes: {', '.join(info.extra)}",
                f"{info.name} が受け取るキー: {', '.join(info.extra)}",
            )
    kwargs = dict(kwargs)
    # a LambdaLR built with last_epoch != -1 wants an 'initial_lr' the fresh optimizer lacks
    if kwargs.pop("last_epoch", -1) != -1:
        raise OptionError(
            SCHEDULER_ARGS, "last_epoch", "last_epoch=-1 only (resume with --resume instead)", "last_epoch は -1 のみ(再開は --resume で)"
        )
    return kwargs


def sd_scripts_stock(
    name: str,
    *,
    num_training_steps: int,
    lr_warmup_steps: int | float = 0,
    lr_decay_steps: int | float = 0,
    num_cycles: int = 1,
    power: float = 1,
    timescale: int | None = None,
    min_lr_ratio: float | None = None,
    scheduler_kwargs: dict[str, Any] | None = None,
    lr_init: float | None = None,
) -> tuple[dict[str, Any], Curve]:
    """The stock curve real sd-scripts' ``get_scheduler_fix`` builds for ``--lr_scheduler=name``,
    and the settings that shape it: ``({"name": name, keyword: value, ...}, step -> multiplier)``.

    ``num_training_steps`` is already scaled by the processes (``--max_train_steps * processes``),
    as sd-scripts scales it; ``lr_warmup_steps`` / ``lr_decay_steps`` are the flag values (an int
    is steps, a float a ratio of that total, truncated); ``num_cycles``, ``power``, ``timescale``,
    ``min_lr_ratio`` the ``--lr_scheduler_*`` flags with sd-scripts' defaults; ``scheduler_kwargs``
    the parsed ``--lr_scheduler_args`` (``parse_scheduler_args``); ``lr_init`` the optimizer's
    initial LR (``--learning_rate``), which polynomial and ``min_lr`` depend on.

    Raises options.OptionError, naming the flag, for an unknown name, a name sd-scripts cannot
    build, and whatever sd-scripts or the library would refuse or crash on (warmup with
    constant, an unknown keyword, lr_end >= lr_init, ...). An ``adafactor:<lr>`` name is not a
    curve: check ``optimizer_sets_lr`` first.
    """
    name = str(name)
    if name.startswith("adafactor"):
        raise OptionError(
            "--lr_scheduler",
            name,
            "a schedule curve (adafactor: the optimizer sets the LR, see optimizer_sets_lr)",
            "スケジュールの曲線(adafactor は学習率をオプティマイザが決めます)",
        )
    info = STOCK.get(name)
    if info is None:
        raise unknown_name(name)
    _need_number("--max_train_steps", num_training_steps, 1, integer=True)
    given = Given(
        num_training_steps=num_training_steps,
        warmup=_steps(lr_warmup_steps, num_training_steps, "--lr_warmup_steps"),
        decay=_steps(lr_decay_steps, num_training_steps, "--lr_decay_steps"),
        lr_warmup_steps=lr_warmup_steps,
        num_cycles=num_cycles,
        power=power,
        timescale=timescale,
        min_lr_ratio=min_lr_ratio,
        lr_init=lr_init,
        kwargs=_checked_kwargs(info, scheduler_kwargs or {}),
    )
    settings = {"name": name, **info.read(given)}
    return settings, info.build(settings)


# --- musubi-tuner's own rex ----------------------------------------------------------------------


def musubi_rex(
    num_training_steps: int, num_warmup_steps: int, learning_rate: float, min_lr_ratio: float | None = None,
    rex_alpha: float = 0.1, rex_beta: float = 0.9,
) -> Callable[[int, float], float]:  # fmt: skip
    """musubi-tuner's ``RexLR.get_lr`` (``modules/lr_schedulers.py``, v0.2.11 and later) as its
    ``get_lr_scheduler`` builds it for ``--lr_scheduler=rex``: ``(step, base LR of a group) -> LR``.
    ``max_lr`` is ``--learning_rate`` and ``min_lr`` ``--learning_rate x (--lr_scheduler_min_lr_ratio
    or 0.01)``, absolute: during its warmup (and at a step it guards against spiking) every group
    gets the same absolute LR whatever its own base LR; after it, each group its base LR times the
    REX factor lifted by ``min_lr / max_lr``. Bit for bit its arithmetic, Python's ``%`` included."""
    max_lr = learning_rate
    min_lr = learning_rate * (min_lr_ratio if min_lr_ratio is not None else 0.01)
    remaining = num_training_steps - num_warmup_steps

    def lr(step: int, base_lr: float) -> float:
        if num_warmup_steps == 1 and step == 1:
            return min_lr
        if num_warmup_steps > 1 and 1 <= step <= num_warmup_steps - 1:
            return min_lr + (max_lr - min_lr) * (step - 1) / (num_warmup_steps - 1)
        after = step - num_warmup_steps
        if after >= remaining or after == -1 or remaining <= 0:
            return min_lr
        z = (remaining - (after % remaining)) / remaining
        factor = min_lr / max_lr + (1.0 - min_lr / max_lr) * (z / (rex_alpha + rex_beta * z))
        return base_lr * factor

    return lr
