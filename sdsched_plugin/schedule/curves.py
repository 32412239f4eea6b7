"""The stock learning-rate curves, in pure Python: standard library only.

One job: give ``step -> multiplier`` for every schedule kohya-ss/sd-scripts' ``get_scheduler_fix``
builds, without importing torch, diffusers or transformers, so that ``sdsched preview`` is
instant. Training never uses these: it builds its schedulers through diffusers' and
transformers' own functions. Each curve here repeats the floating-point operations of the
lambda it mirrors, in the same order and with the same types (an int ``1``, a ``max(0, x)``
that can return the int ``0``), so its values are the very same floats (what does not depend
on the step is computed once, with the same operations: the preview evaluates 100,000 steps); tests/test_curves.py
holds every one of them ``==`` to the real lambda over many random settings. Which curve
sd-scripts builds for a name, with which keywords, is ``stock``'s job.

Read from transformers 4.54.1 (what sd-scripts pins) and 5.24.0, and diffusers 0.32.1 and
0.42.1; the lambdas are the same in those versions, except where a docstring says otherwise.
"""

from __future__ import annotations

import math

from .floor import Curve


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


def rex_over(steps: int, rex_alpha: float = 0.1, rex_beta: float = 0.9) -> Curve:
    """REX (Chen et al., "REX: Revisiting Budgeted Training with an Improved Schedule", MLSys
    2022) decaying over ``steps`` steps from step 0: ``z / (rex_alpha + rex_beta * z)`` with
    ``z = (steps - step) / steps`` the share of the decay still to come, as musubi-tuner's
    ``RexLR`` computes it (1 at step 0 with the defaults 0.1 / 0.9; towards 0 at the end)."""
    length = float(max(1, steps))

    def multiplier(step: int) -> float:
        if step >= steps:
            return 0.0
        z = (length - step) / length
        return z / (rex_alpha + rex_beta * z)

    return multiplier


def cosine_over(steps: int) -> Curve:
    """diffusers' cosine with no warmup, decaying from 1 over ``steps`` steps: one cycle of the
    restart controls (``cycles.restart_curve``)."""
    return cosine(0, steps)
