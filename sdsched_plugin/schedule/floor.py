"""The floor: pure schedule math, standard library only.

One job: turn a stock learning-rate curve (a function of the step returning a multiplier) into
the floored curve ``min + (1 - min) * f(step)`` after warmup, as the sd-scripts wiki does by
hand. The stock curves themselves come from ``diffusers.optimization`` (see ``schedulers``);
this module never imports torch or diffusers, so the math is testable on its own and cheap
to import from the command line tool.
"""

from __future__ import annotations

from typing import Callable

Curve = Callable[[int], float]


def floored_curve(stock: Curve, min_value: float, num_warmup_steps: int, num_training_steps: int) -> Curve:
    """Return ``step -> multiplier``: ``stock`` during warmup, then lifted so it never falls below
    ``min_value``.

    At and after ``num_training_steps`` the multiplier stays at ``min_value``: the stock
    ``cosine_with_restarts`` drops to 0 there and the stock ``cosine`` climbs back up, neither of
    which a floored schedule should do.
    """
    lift = 1.0 - min_value

    # A plain function (not a functools.partial or a callable object) so that torch's
    # LambdaLR.state_dict() stores None for it instead of trying to save its __dict__.
    def multiplier(step: int) -> float:
        if step < num_warmup_steps:
            return stock(step)
        if step >= num_training_steps:
            return min_value
        return min_value + lift * stock(step)

    return multiplier


def warmup_steps_from(lr_warmup_steps: int | float | None, num_training_steps: int) -> int:
    """sd-scripts' reading of ``--lr_warmup_steps``: an int is a step count, a float is a ratio
    of the (process-scaled) training steps, truncated as ``int(ratio * total)``."""
    if lr_warmup_steps is None:
        return 0
    if isinstance(lr_warmup_steps, float):
        return int(lr_warmup_steps * num_training_steps)
    return int(lr_warmup_steps)
