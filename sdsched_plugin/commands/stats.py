"""Numbers about a schedule, from its multipliers. Standard library only.

``multipliers[k]`` is the LR multiplier used at optimizer step ``k`` (0-based). What users ask
of a schedule before training: where it restarts, how much it trains in all (the mean
multiplier, i.e. the area under the curve relative to ``constant``), how much more LR or how
many more steps it needs to match ``constant``, how long it idles near 0, and how much each
epoch is trained.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

LOW_SHARE_OF_PEAK = 0.1


@dataclass(frozen=True)
class KeyStep:
    step: int
    label: str
    multiplier: float


@dataclass(frozen=True)
class Summary:
    steps: int
    peak: float
    mean_multiplier: float
    match_constant_factor: float  # LR or steps x this = constant's total (multiplier 1 at every step)
    share_below_10pct_of_peak: float
    key_steps: list[KeyStep] = field(default_factory=list)
    epoch_means: list[float] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def restarts(multipliers: list[float], after: int) -> list[int]:
    """Steps after ``after`` (the warmup end) where the curve turns back up: the first step of
    each rise. A hard restart rises in one step; a smooth one (cosine_with_min_lr over several
    cycles) rises over many, and is one restart, not one per step."""
    rising = [k for k in range(max(after, 1), len(multipliers)) if multipliers[k] > multipliers[k - 1] + 1e-12]
    return [k for i, k in enumerate(rising) if i == 0 or rising[i - 1] != k - 1]


def warmup_end(multipliers: list[float], peak: float) -> int:
    """The first step at the peak: where the warmup ramp ends (0 without warmup)."""
    return next(k for k, m in enumerate(multipliers) if m >= peak - 1e-12)


def epoch_means(multipliers: list[float], steps_per_epoch: int) -> list[float]:
    return [
        math.fsum(multipliers[start : start + steps_per_epoch]) / len(multipliers[start : start + steps_per_epoch])
        for start in range(0, len(multipliers), steps_per_epoch)
    ]


def summarize(multipliers: list[float], steps_per_epoch: int | None = None) -> Summary:
    steps = len(multipliers)
    peak = max(multipliers)
    mean = math.fsum(multipliers) / steps
    ramp_end = warmup_end(multipliers, peak)
    keys = [KeyStep(0, "start", multipliers[0])]
    if ramp_end > 0:
        keys.append(KeyStep(ramp_end, "warmup end", multipliers[ramp_end]))
    keys += [KeyStep(k, "restart", multipliers[k]) for k in restarts(multipliers, ramp_end + 1)]
    keys.append(KeyStep(steps - 1, "last step", multipliers[-1]))
    return Summary(
        steps=steps,
        peak=peak,
        mean_multiplier=mean,
        match_constant_factor=1.0 / mean if mean > 0 else math.inf,
        share_below_10pct_of_peak=sum(1 for m in multipliers if m < LOW_SHARE_OF_PEAK * peak) / steps,
        key_steps=keys,
        epoch_means=epoch_means(multipliers, steps_per_epoch) if steps_per_epoch else [],
    )
