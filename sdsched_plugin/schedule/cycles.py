"""Restart controls for cosine with restarts: pure math, standard library only.

sd-scripts #73 asks for cycles whose peak decays, cycles of growing length and a warmup at
each restart, on top of a floor. Here:

- ``cycle_lengths``: the decaying part of the run split into whole-step cycles, each
  ``cycle_mul`` times as long as the one before; the rounding goes to the last cycle, so the
  cycles fill the run exactly and none starts on the last step.
- ``restart_curve``: inside cycle ``k`` the stock cosine (given by the caller, from diffusers),
  lifted between the floor and the cycle's peak ``max(floor, cycle_decay ** k)``, after a
  linear ramp from the floor to that peak at each restart.

The multiplier never leaves [floor, peak of its cycle] after the first warmup, never rises
inside a cycle after its ramp, and stays at the floor from the last scheduled step on.
"""

from __future__ import annotations

import bisect
from typing import Callable

from .floor import Curve
from .options import OptionError

RESCALE = "rescale"
# restart settings that give exactly sd-scripts' cosine_with_restarts shape (then floored)
PLAIN = {"cycle_decay": 1.0, "cycle_mul": 1.0, "restart_warmup_steps": 0, "floor_mode": RESCALE}


def cycle_lengths(decay_steps: int, num_cycles: int, cycle_mul: float) -> list[int]:
    """Whole-step lengths of ``num_cycles`` cycles, growing by ``cycle_mul``, summing to
    ``decay_steps``. Each cycle but the last is its geometric share rounded, at least one step,
    and never so long that a later cycle would get none; the last takes the rest."""
    check_cycles_fit(decay_steps, num_cycles)
    if cycle_mul == 1.0:
        first = decay_steps / num_cycles
    else:
        first = decay_steps * (cycle_mul - 1.0) / (growth(cycle_mul, num_cycles) - 1.0)
    lengths: list[int] = []
    for k in range(num_cycles - 1):
        room = decay_steps - sum(lengths) - (num_cycles - 1 - k)  # leave a step for each later cycle
        lengths.append(min(room, max(1, round(first * cycle_mul**k))))
    return lengths + [decay_steps - sum(lengths)]


def check_cycles_fit(decay_steps: int, num_cycles: int) -> None:
    """More cycles than decaying steps give a flat or aliased curve that never reaches the
    floor: refuse them, naming the most that fits."""
    if decay_steps < num_cycles:
        raise OptionError(
            "--lr_scheduler_num_cycles",
            num_cycles,
            f"at most {decay_steps}: one cycle per step after warmup ({decay_steps} steps)",
            f"{decay_steps} 以下(ウォームアップ後のステップ数 {decay_steps} を超えないサイクル数)",
        )


def growth(cycle_mul: float, num_cycles: int) -> float:
    """``cycle_mul ** num_cycles``, or the usual message where it overflows a float."""
    try:
        return cycle_mul**num_cycles
    except OverflowError:
        raise OptionError(
            "--lr_scheduler_cycle_mul",
            cycle_mul,
            f"a value whose power {num_cycles} (the cycle count) fits in a float: fewer cycles or a smaller C",
            f"サイクル数 {num_cycles} 乗が浮動小数点数に収まる値(サイクル数か C を小さく)",
        ) from None


def ramp_steps(restart_warmup: int | float, length: int) -> int:
    """A restart ramp given as steps, or as a ratio (float < 1) of the cycle's length."""
    return int(restart_warmup * length) if isinstance(restart_warmup, float) else int(restart_warmup)


def plan(decay_steps: int, num_cycles: int, cycle_mul: float, restart_warmup: int | float) -> tuple[list, list, list]:
    """(first step of each cycle counted from the warmup end, lengths, restart ramp lengths)."""
    lengths = cycle_lengths(decay_steps, num_cycles, cycle_mul)
    offsets = [sum(lengths[:k]) for k in range(num_cycles)]
    ramps = [0] + [ramp_steps(restart_warmup, length) for length in lengths[1:]]
    for k, (length, ramp) in enumerate(zip(lengths, ramps)):
        if ramp >= length:
            raise OptionError(
                "--lr_scheduler_restart_warmup_steps",
                restart_warmup,
                f"a ramp shorter than every cycle (cycle {k + 1} has {length} steps)",
                f"どのサイクルよりも短いウォームアップ(サイクル {k + 1} は {length} ステップ)",
            )
    return offsets, lengths, ramps


def epoch_cycle_lengths(num_epochs: int, cycle_epochs: int, cycle_mul: float) -> list[int]:
    """Whole-epoch lengths of the cycles of ``--lr_scheduler_cycle_epochs``: ``cycle_epochs``, then
    each ``cycle_mul`` times the one before (rounded, at least one epoch), the last cut to the
    epochs that are left, so that the run ends at the floor."""
    lengths: list[int] = []
    while sum(lengths) < num_epochs:
        lengths.append(min(num_epochs - sum(lengths), max(1, round(cycle_epochs * cycle_mul ** len(lengths)))))
    return lengths


def epoch_plan(
    num_warmup_steps: int, num_training_steps: int, steps_per_epoch: int, cycle_epochs: int, num_cycles: int,
    cycle_mul: float, restart_warmup: int | float,
) -> tuple[list, list, list]:  # fmt: skip
    """``plan`` with every restart on an epoch's first step: cycle k starts at epoch
    ``sum(lengths[:k])`` (the first one after the warmup). ``num_cycles`` must be the count the
    epochs give, 1 (sd-scripts' default) or the epoch count (what the kohya_ss GUI writes when its
    "LR # cycles" is empty); where it is another, the error names both flags."""
    num_epochs = -(-num_training_steps // steps_per_epoch)
    epochs = epoch_cycle_lengths(num_epochs, cycle_epochs, cycle_mul)
    if num_cycles not in (1, len(epochs), num_epochs):
        raise OptionError(
            "--lr_scheduler_num_cycles",
            num_cycles,
            f"{len(epochs)}, the cycles that --lr_scheduler_cycle_epochs={cycle_epochs} gives over {num_epochs} epochs; or leave it out",
            f"{len(epochs)}(--lr_scheduler_cycle_epochs={cycle_epochs} と {num_epochs} エポックから決まるサイクル数)。または指定しないでください",
        )
    starts = [max(num_warmup_steps, sum(epochs[:k]) * steps_per_epoch) for k in range(len(epochs))]
    ends = [*starts[1:], num_training_steps]
    if ends[0] <= num_warmup_steps:
        raise OptionError(
            "--lr_warmup_steps",
            num_warmup_steps,
            f"a warmup shorter than the first cycle of --lr_scheduler_cycle_epochs={cycle_epochs} ({ends[0]} steps)",
            f"最初のサイクル({ends[0]} ステップ)より短いウォームアップ",
        )
    lengths = [end - start for start, end in zip(starts, ends)]
    ramps = [0] + [ramp_steps(restart_warmup, length) for length in lengths[1:]]
    for k, (length, ramp) in enumerate(zip(lengths, ramps)):
        if ramp >= length:
            raise OptionError(
                "--lr_scheduler_restart_warmup_steps", restart_warmup,
                f"a ramp shorter than every cycle (cycle {k + 1} has {length} steps)", f"どのサイクルよりも短いウォームアップ(サイクル {k + 1} は {length} ステップ)",
            )  # fmt: skip
    return [start - num_warmup_steps for start in starts], lengths, ramps


def restart_curve(
    stock_cosine: Callable[[int], Curve],
    min_value: float,
    num_warmup_steps: int,
    num_training_steps: int,
    num_cycles: int,
    cycle_decay: float = 1.0,
    cycle_mul: float = 1.0,
    restart_warmup: int | float = 0,
    floor_mode: str = RESCALE,
    cycles_plan: tuple[list, list, list] | None = None,
) -> Curve:
    """``step -> multiplier``. ``stock_cosine(n)`` is the stock cosine decaying over ``n`` steps
    (1 at step 0, towards 0 at step n); ``num_warmup_steps`` is the first warmup, from 0.
    ``cycles_plan``: the cycles as ``plan`` gives them, where they are not the run split by
    ``num_cycles`` (``epoch_plan``)."""
    offsets, lengths, ramps = cycles_plan or plan(num_training_steps - num_warmup_steps, num_cycles, cycle_mul, restart_warmup)
    starts = [num_warmup_steps + offset for offset in offsets]
    peaks = [max(min_value, cycle_decay**k) for k in range(len(lengths))]
    curves = [stock_cosine(length - ramp) for length, ramp in zip(lengths, ramps)]
    rescale = floor_mode == RESCALE

    def multiplier(step: int) -> float:
        if step < num_warmup_steps:
            return step / max(1, num_warmup_steps)  # sd-scripts' warmup, unchanged
        if step >= num_training_steps:
            return min_value
        k = bisect.bisect_right(starts, step) - 1
        local, ramp, peak = step - starts[k], ramps[k], peaks[k]
        if local < ramp:
            return min_value + (peak - min_value) * local / ramp
        f = curves[k](local - ramp)
        return min_value + (peak - min_value) * f if rescale else max(min_value, peak * f)

    return multiplier
