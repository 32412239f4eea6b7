"""The stock learning-rate curves, in pure Python: standard library only.

One job: give ``step -> multiplier`` for every schedule kohya-ss/sd-scripts' ``get_scheduler_fix``
builds, without importing torch, diffusers or transformers, so that ``sdsched preview`` is
instant. Training never uses these: it builds its schedulers through diffusers' and
transformers' own functions. Each curve here repeats the floating-point operations of the
lambda it mirrors, in the same order and with the same types (an int ``1``, a ``max(0, x)``
that can return the int ``0``), so its values are the very same floats (what does not depend
on the step is computed once, with the same operations: the preview evaluates 100,000 steps); tests/test_curves.py
holds every one of them ``==`` to the real lambda over many random settings.

Read from transformers 4.54.1 (what sd-scripts pins) and 5.24.0, and diffusers 0.32.1 and
0.42.1; the lambdas are the same in those versions, except where a docstring says otherwise.

``sd_scripts_stock`` mirrors the dispatch of ``get_scheduler_fix`` (the step counts, the ratio
truncations, ``num_cycles / 2``, the keywords of ``--lr_scheduler_args``) and refuses, with an
``options.OptionError`` naming the flag, what sd-scripts would refuse or crash on.
"""

from __future__ import annotations

import math
from typing import Any

from .floor import Curve
from .options import OptionError


# --- the lambdas -------------------------------------------------------------------------------
# Names follow the library functions. Where diffusers and transformers both have one, they agree
# bit for bit unless the docstring says otherwise.


def constant() -> Curve:
    """``get_constant_schedule``: the int 1 at every step (both libraries return the int)."""

    def multiplier(_=None):
        return 1

    return multiplier


def constant_with_warmup(num_warmup_steps: int) -> Curve:
    """``get_constant_schedule_with_warmup``."""

    def multiplier(current_step: int):
        if current_step < num_warmup_steps:
            return float(current_step) / float(max(1.0, num_warmup_steps))
        return 1.0

    return multiplier


def linear(num_warmup_steps: int, num_training_steps: int) -> Curve:
    """``get_linear_schedule_with_warmup``. diffusers 0.42 added ``f_min``/``f_max`` (0 and 1 by
    default: ``1.0 * x`` and ``0.0 + 1.0 * x`` give ``x`` exactly, so the default curve is this one)."""

    warmup = float(max(1, num_warmup_steps))
    decay = float(max(1, num_training_steps - num_warmup_steps))

    def multiplier(current_step: int):
        if current_step < num_warmup_steps:
            return float(current_step) / warmup
        return max(0.0, float(num_training_steps - current_step) / decay)

    return multiplier


def cosine(num_warmup_steps: int, num_training_steps: int, num_cycles: float = 0.5) -> Curve:
    """diffusers' ``get_cosine_schedule_with_warmup`` (the floored cosine wraps this one).

    transformers' function of the same name gives the same floats through another lambda
    (``cosine_with_min_lr`` with rate 0.0), which returns the int 0 where this returns 0.0."""

    warmup, decay = float(max(1, num_warmup_steps)), float(max(1, num_training_steps - num_warmup_steps))
    scale, cos = math.pi * float(num_cycles) * 2.0, math.cos  # the product's first two factors: same bits

    def multiplier(current_step: int):
        if current_step < num_warmup_steps:
            return float(current_step) / warmup
        progress = float(current_step - num_warmup_steps) / decay
        return max(0.0, 0.5 * (1.0 + cos(scale * progress)))

    return multiplier


def cosine_with_min_lr(num_warmup_steps: int, num_training_steps: int, num_cycles: float = 0.5, min_lr_rate: float = 0.0) -> Curve:
    """transformers' ``get_cosine_with_min_lr_schedule_with_warmup`` once ``min_lr_rate`` is known
    (``min_lr`` is turned into ``min_lr / lr_init`` by the caller, as transformers does).

    transformers defines its cosine lambda twice and the second definition wins, so its
    ``get_cosine_schedule_with_warmup`` (sd-scripts' ``cosine``) is this with ``min_lr_rate=0.0``."""

    warmup, decay = float(max(1, num_warmup_steps)), float(max(1, num_training_steps - num_warmup_steps))
    scale, cos, keep = math.pi * float(num_cycles) * 2.0, math.cos, 1 - min_lr_rate

    def multiplier(current_step: int):
        if current_step < num_warmup_steps:
            return float(current_step) / warmup
        progress = float(current_step - num_warmup_steps) / decay
        factor = 0.5 * (1.0 + cos(scale * progress))
        factor = factor * keep + min_lr_rate
        return max(0, factor)

    return multiplier


def cosine_with_hard_restarts(num_warmup_steps: int, num_training_steps: int, num_cycles: int = 1) -> Curve:
    """``get_cosine_with_hard_restarts_schedule_with_warmup`` (sd-scripts' ``cosine_with_restarts``)."""

    warmup, decay = float(max(1, num_warmup_steps)), float(max(1, num_training_steps - num_warmup_steps))
    cycles, cos, pi = float(num_cycles), math.cos, math.pi

    def multiplier(current_step: int):
        if current_step < num_warmup_steps:
            return float(current_step) / warmup
        progress = float(current_step - num_warmup_steps) / decay
        if progress >= 1.0:
            return 0.0
        return max(0.0, 0.5 * (1.0 + cos(pi * ((cycles * progress) % 1.0))))

    return multiplier


def polynomial(num_warmup_steps: int, num_training_steps: int, lr_end: float = 1e-7, power: float = 1.0, *, lr_init: float) -> Curve:
    """``get_polynomial_decay_schedule_with_warmup``.

    The multiplier depends on the optimizer's initial LR: the libraries read
    ``optimizer.defaults["lr"]`` (sd-scripts: ``--learning_rate``) and return
    ``((lr_init - lr_end) * remaining**power + lr_end) / lr_init``, so ``lr_init`` is a required
    argument here. Raises ValueError unless ``lr_init > lr_end``, as both libraries do; the floored
    polynomial builds its stock curve on an optimizer with lr 1.0 and ``lr_end=0.0``."""
    if not (lr_init > lr_end):
        raise ValueError(f"lr_end ({lr_end}) must be smaller than initial lr ({lr_init})")

    warmup = float(max(1, num_warmup_steps))
    lr_range = lr_init - lr_end
    decay_steps = num_training_steps - num_warmup_steps

    def multiplier(current_step: int):
        if current_step < num_warmup_steps:
            return float(current_step) / warmup
        elif current_step > num_training_steps:
            return lr_end / lr_init
        else:
            pct_remaining = 1 - (current_step - num_warmup_steps) / decay_steps
            decay = lr_range * pct_remaining**power + lr_end
            return decay / lr_init

    return multiplier


def inverse_sqrt(num_warmup_steps: int, timescale: int | None = None) -> Curve:
    """transformers' ``get_inverse_sqrt_schedule``; no timescale means the warmup, or 10,000."""
    if timescale is None:
        timescale = num_warmup_steps or 10_000

    def multiplier(current_step: int):
        if current_step < num_warmup_steps:
            return float(current_step) / float(max(1, num_warmup_steps))
        shift = timescale - num_warmup_steps
        decay = 1.0 / math.sqrt((current_step + shift) / timescale)
        return decay

    return multiplier


WSD_TYPES = ("linear", "cosine", "1-sqrt")


def warmup_stable_decay(
    num_warmup_steps: int,
    num_decay_steps: int,
    num_training_steps: int | None = None,
    num_stable_steps: int | None = None,
    warmup_type: str = "linear",
    decay_type: str = "cosine",
    min_lr_ratio: float = 0,
    num_cycles: float = 0.5,
) -> Curve:
    """transformers' ``get_wsd_schedule`` (``warmup_type``, ``decay_type`` and
    ``num_training_steps`` exist since transformers 4.50; 4.54.1, which sd-scripts pins, has them).
    Raises ValueError as transformers does for a missing length or an unknown type."""
    if num_training_steps is None and num_stable_steps is None:
        raise ValueError("Either num_training_steps or num_stable_steps must be specified.")
    if warmup_type not in WSD_TYPES:
        raise ValueError(f"Unknown warmup type: {warmup_type}, expected 'linear', 'cosine' or '1-sqrt'")
    if decay_type not in WSD_TYPES:
        raise ValueError(f"Unknown decay type: {decay_type}, expected 'linear', 'cosine' or '1-sqrt'")
    if num_stable_steps is None:
        num_stable_steps = num_training_steps - num_warmup_steps - num_decay_steps

    def multiplier(current_step: int):
        if current_step < num_warmup_steps:
            progress = float(current_step) / float(max(1, num_warmup_steps))
            if warmup_type == "linear":
                factor = progress
            elif warmup_type == "cosine":
                factor = 0.5 * (1.0 - math.cos(math.pi * progress))
            elif warmup_type == "1-sqrt":
                factor = 1.0 - math.sqrt(1.0 - progress)
            factor = factor * (1.0 - min_lr_ratio) + min_lr_ratio
            return max(0.0, factor)
        if current_step < num_warmup_steps + num_stable_steps:
            return 1.0
        if current_step < num_warmup_steps + num_stable_steps + num_decay_steps:
            progress = float(current_step - num_warmup_steps - num_stable_steps) / float(max(1, num_decay_steps))
            if decay_type == "linear":
                factor = 1.0 - progress
            elif decay_type == "cosine":
                factor = 0.5 * (1.0 + math.cos(math.pi * float(num_cycles) * 2.0 * progress))
            elif decay_type == "1-sqrt":
                factor = 1.0 - math.sqrt(progress)
            factor = factor * (1.0 - min_lr_ratio) + min_lr_ratio
            return max(0.0, factor)
        return min_lr_ratio

    return multiplier


def piecewise_constant(step_rules: str) -> Curve:
    """diffusers' ``get_piecewise_constant_schedule``: ``"1:10,0.1:20,0.005"`` is 1 before step 10,
    0.1 before step 20, then 0.005. Parsed as diffusers parses it (a repeated step keeps the last
    value; the rules are taken in step order whatever order they are written in); ValueError or
    AttributeError for what diffusers cannot parse."""
    rules = {}
    rule_list = step_rules.split(",")
    for rule_str in rule_list[:-1]:
        value_str, steps_str = rule_str.split(":")
        steps = int(steps_str)
        value = float(value_str)
        rules[steps] = value
    last_lr_multiple = float(rule_list[-1])
    # diffusers sorts the steps at every call; sorting once gives the same answer
    ordered = [(steps, rules[steps]) for steps in sorted(rules)]

    def multiplier(steps: int):
        for sorted_step, value in ordered:
            if steps < sorted_step:
                return value
        return last_lr_multiple

    return multiplier


def cosine_over(steps: int) -> Curve:
    """diffusers' cosine with no warmup, decaying from 1 over ``steps`` steps: one cycle of the
    restart controls (``cycles.restart_curve``)."""
    return cosine(0, steps)


# --- sd-scripts' dispatch ----------------------------------------------------------------------

# Every --lr_scheduler name get_scheduler_fix builds a curve for (adafactor:<lr> aside, see
# optimizer_sets_lr). piecewise_constant comes from diffusers, the rest from transformers.
SD_SCRIPTS_NAMES = (
    "constant",
    "constant_with_warmup",
    "cosine",
    "cosine_with_min_lr",
    "cosine_with_restarts",
    "inverse_sqrt",
    "linear",
    "piecewise_constant",
    "polynomial",
    "warmup_stable_decay",
)
# transformers names that get_scheduler_fix hands the step counts to, which their functions do
# not take: sd-scripts fails with a TypeError when it builds them.
SD_SCRIPTS_CANNOT_BUILD = {
    "reduce_lr_on_plateau": "it follows a metric, and get_scheduler_fix passes it step counts it does not take",
    "cosine_warmup_with_min_lr": "get_scheduler_fix passes it num_decay_steps, which it does not take",
    "greedy": "it follows a metric, and get_scheduler_fix passes it step counts it does not take",
}

SCHEDULER_ARGS = "--lr_scheduler_args"
# the flag each keyword that get_scheduler_fix sets itself comes from
_SET_BY = {
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
# per name: the keywords get_scheduler_fix passes itself, and the ones --lr_scheduler_args may add
_PASSED = {
    "constant": (),
    "constant_with_warmup": ("num_warmup_steps",),
    "inverse_sqrt": ("num_warmup_steps", "timescale"),
    "cosine_with_restarts": ("num_warmup_steps", "num_training_steps", "num_cycles"),
    "polynomial": ("num_warmup_steps", "num_training_steps", "power"),
    "cosine_with_min_lr": ("num_warmup_steps", "num_training_steps", "num_cycles", "min_lr_rate"),
    "linear": ("num_warmup_steps", "num_training_steps"),
    "cosine": ("num_warmup_steps", "num_training_steps"),
    "warmup_stable_decay": ("num_warmup_steps", "num_stable_steps", "num_decay_steps", "num_cycles", "min_lr_ratio"),
    "piecewise_constant": (),
}
_EXTRA = {
    "constant": ("last_epoch",),
    "constant_with_warmup": ("last_epoch",),
    "inverse_sqrt": ("last_epoch",),
    "cosine_with_restarts": ("last_epoch",),
    "polynomial": ("lr_end", "last_epoch"),
    "cosine_with_min_lr": ("min_lr", "last_epoch"),
    "linear": ("last_epoch",),
    "cosine": ("num_cycles", "last_epoch"),
    "warmup_stable_decay": ("num_training_steps", "warmup_type", "decay_type", "last_epoch"),
    "piecewise_constant": ("step_rules", "last_epoch"),
}


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


def _names_line() -> str:
    return ", ".join(SD_SCRIPTS_NAMES)


def unknown_name(name) -> OptionError:
    names = _names_line()
    if name in SD_SCRIPTS_CANNOT_BUILD:
        why = SD_SCRIPTS_CANNOT_BUILD[name]
        return OptionError(
            "--lr_scheduler",
            name,
            f"a schedule sd-scripts can build ({name}: {why}): {names}",
            f"sd-scripts が作れるスケジューラ({name} は get_scheduler_fix では作れません): {names}",
        )
    return OptionError("--lr_scheduler", name, f"one of: {names}", f"次のいずれかを指定してください: {names}")


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

    The settings hold every keyword the library function receives (its defaults included) and
    ``lr_init`` where it shapes the curve. Raises options.OptionError, naming the flag, for an
    unknown name, a name sd-scripts cannot build, and whatever sd-scripts or the library would
    refuse or crash on (warmup with constant, an unknown keyword, lr_end >= lr_init, ...).
    An ``adafactor:<lr>`` name is not a curve: check ``optimizer_sets_lr`` first.
    """
    name = str(name)
    if name.startswith("adafactor"):
        raise OptionError(
            "--lr_scheduler",
            name,
            "a schedule curve (adafactor: the optimizer sets the LR, see optimizer_sets_lr)",
            "スケジュールの曲線(adafactor は学習率をオプティマイザが決めます)",
        )
    if name not in SD_SCRIPTS_NAMES:
        raise unknown_name(name)
    _need_number("--max_train_steps", num_training_steps, 1, integer=True)
    warmup = _steps(lr_warmup_steps, num_training_steps, "--lr_warmup_steps")
    decay = _steps(lr_decay_steps, num_training_steps, "--lr_decay_steps")
    kwargs = dict(scheduler_kwargs or {})

    allowed = _EXTRA[name]
    for key in kwargs:
        if key in _PASSED[name]:
            raise OptionError(
                SCHEDULER_ARGS,
                f"{key}={kwargs[key]!r}",
                f"no {key}: sd-scripts passes it to {name} from {_SET_BY[key]}",
                f"{key} は指定できません({name} には sd-scripts が {_SET_BY[key]} から渡します)",
            )
        if key not in allowed:
            raise OptionError(
                SCHEDULER_ARGS,
                f"{key}={kwargs[key]!r}",
                f"keys {name} takes: {', '.join(allowed)}",
                f"{name} が受け取るキー: {', '.join(allowed)}",
            )
    # a LambdaLR built with last_epoch != -1 wants an 'initial_lr' the fresh optimizer lacks
    if kwargs.pop("last_epoch", -1) != -1:
        raise OptionError(
            SCHEDULER_ARGS, "last_epoch", "last_epoch=-1 only (resume with --resume instead)", "last_epoch は -1 のみ(再開は --resume で)"
        )

    def arg_flag(key):
        return f"{SCHEDULER_ARGS} {key}"

    settings: dict[str, Any] = {"name": name}
    if name == "piecewise_constant":
        # sd-scripts hands it only the --lr_scheduler_args: no warmup, no step counts
        rules = kwargs.get("step_rules")
        if not isinstance(rules, str):
            raise OptionError(
                arg_flag("step_rules"),
                rules,
                "a quoted string of value:step rules ending in the last value, e.g. step_rules=\"1:10,0.1:20,0.01\"",
                "value:step の規則を並べ最後の値で終わる引用符付き文字列(例: step_rules=\"1:10,0.1:20,0.01\")",
            )
        try:
            curve = piecewise_constant(rules)
        except (ValueError, AttributeError):
            raise OptionError(
                arg_flag("step_rules"),
                rules,
                "value:step rules separated by commas, ending in the last value, e.g. \"1:10,0.1:20,0.01\"",
                "カンマ区切りの value:step の規則で、最後は値のみ(例: \"1:10,0.1:20,0.01\")",
            ) from None
        return {**settings, "step_rules": rules}, curve

    if name == "constant":
        if warmup != 0:
            raise OptionError(
                "--lr_warmup_steps",
                lr_warmup_steps,
                "0 with constant (sd-scripts refuses a warmup there; use constant_with_warmup)",
                "constant では 0(ウォームアップは constant_with_warmup で)",
            )
        return settings, constant()

    settings["num_warmup_steps"] = warmup
    if name == "constant_with_warmup":
        return settings, constant_with_warmup(warmup)

    if name == "inverse_sqrt":
        if timescale is not None:
            # 0 divides by zero; below 0 takes the square root of a negative number
            _need_number("--lr_scheduler_timescale", timescale, 0, above=True)
        settings["timescale"] = timescale if timescale is not None else warmup or 10_000
        return settings, inverse_sqrt(warmup, timescale)

    settings["num_training_steps"] = num_training_steps
    if name == "cosine_with_restarts":
        _need_number("--lr_scheduler_num_cycles", num_cycles)
        settings["num_cycles"] = num_cycles
        return settings, cosine_with_hard_restarts(warmup, num_training_steps, num_cycles)

    if name == "polynomial":
        _need_number("--lr_scheduler_power", power)
        lr_end = kwargs.get("lr_end", 1e-7)
        _need_number(arg_flag("lr_end"), lr_end)
        _need_number("--learning_rate", lr_init)
        if not lr_init > lr_end:
            raise OptionError(
                arg_flag("lr_end"),
                lr_end,
                f"below the learning rate ({lr_init}): polynomial decays from it to lr_end (default 1e-7)",
                f"学習率({lr_init})より小さい値(polynomial は学習率から lr_end まで減衰します。既定 1e-7)",
            )
        if warmup == num_training_steps:
            # the lambda divides by (total - warmup) at the step after the last one, which
            # sd-scripts' scheduler reaches: ZeroDivisionError at the end of the run
            raise OptionError(
                "--lr_warmup_steps",
                lr_warmup_steps,
                f"fewer warmup steps than training steps ({num_training_steps}) with polynomial",
                f"polynomial ではウォームアップを総ステップ数({num_training_steps})より少なく",
            )
        settings.update(power=power, lr_end=lr_end, lr_init=lr_init)
        return settings, polynomial(warmup, num_training_steps, lr_end, power, lr_init=lr_init)

    if name == "cosine_with_min_lr":
        _need_number("--lr_scheduler_num_cycles", num_cycles)
        min_lr = kwargs.get("min_lr")
        if min_lr is not None and min_lr_ratio is not None:
            raise OptionError(
                arg_flag("min_lr"),
                min_lr,
                f"only one of --lr_scheduler_min_lr_ratio ({min_lr_ratio}) and min_lr",
                "--lr_scheduler_min_lr_ratio と min_lr はどちらか一方のみ",
            )
        if min_lr is not None:
            _need_number(arg_flag("min_lr"), min_lr)
            _need_number("--learning_rate", lr_init, 0, above=True)
            rate = min_lr / lr_init  # transformers: min_lr / optimizer.defaults["lr"]
            settings.update(min_lr=min_lr, lr_init=lr_init)
        elif min_lr_ratio is None:
            raise OptionError(
                "--lr_scheduler_min_lr_ratio",
                None,
                "a ratio for cosine_with_min_lr, e.g. --lr_scheduler_min_lr_ratio=0.1 (or min_lr=... in --lr_scheduler_args)",
                "cosine_with_min_lr には比率が必要です(例: --lr_scheduler_min_lr_ratio=0.1、または --lr_scheduler_args に min_lr=...)",
            )
        else:
            _need_number("--lr_scheduler_min_lr_ratio", min_lr_ratio)
            rate = min_lr_ratio
        settings.update(num_cycles=num_cycles / 2, min_lr_rate=rate)
        return settings, cosine_with_min_lr(warmup, num_training_steps, num_cycles / 2, rate)

    if name == "linear":
        return settings, linear(warmup, num_training_steps)

    if name == "cosine":
        cycles = kwargs.get("num_cycles", 0.5)  # not --lr_scheduler_num_cycles: sd-scripts does not pass it
        _need_number(arg_flag("num_cycles"), cycles)
        settings["num_cycles"] = cycles
        # transformers' cosine: the min-lr lambda with rate 0.0 (see cosine_with_min_lr)
        return settings, cosine_with_min_lr(warmup, num_training_steps, cycles, 0.0)

    # warmup_stable_decay
    _need_number("--lr_scheduler_num_cycles", num_cycles)
    ratio = min_lr_ratio if min_lr_ratio is not None else 0.0
    _need_number("--lr_scheduler_min_lr_ratio", ratio)
    types = {}
    for key in ("warmup_type", "decay_type"):
        value = kwargs.get(key, "linear" if key == "warmup_type" else "cosine")
        if value not in WSD_TYPES:
            raise OptionError(arg_flag(key), value, "one of: " + ", ".join(WSD_TYPES), "次のいずれか: " + ", ".join(WSD_TYPES))
        types[key] = value
    del settings["num_training_steps"]  # sd-scripts passes the stable steps instead
    stable = num_training_steps - warmup - decay
    settings.update(num_stable_steps=stable, num_decay_steps=decay, **types, min_lr_ratio=ratio, num_cycles=num_cycles / 2)
    # a num_training_steps in the args is ignored by transformers (with a warning): the stable
    # steps, which sd-scripts always passes, win
    return settings, warmup_stable_decay(
        warmup, decay, num_stable_steps=stable, min_lr_ratio=ratio, num_cycles=num_cycles / 2, **types
    )
