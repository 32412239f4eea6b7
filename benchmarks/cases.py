"""The schedules that items 2 and 3 compare: each floored schedule against the stock
``diffusers.optimization`` schedule of the same base name, with the same step counts, on an
AdamW optimizer with two param groups (U-Net and text encoder, as sd-scripts' LoRA training has).
"""

from __future__ import annotations

MIN_VALUE = 0.5
CYCLES = 3
# the restart controls of cosine_with_restarts_floor (sd-scripts #73), all away from their defaults
CONTROLS = {"cycle_decay": 0.5, "cycle_mul": 1.5, "restart_warmup_steps": 0.1}


def optimizer():
    import torch

    unet, text_encoder = torch.nn.Parameter(torch.zeros(4)), torch.nn.Parameter(torch.zeros(4))
    return torch.optim.AdamW([{"params": [unet], "lr": 1e-4}, {"params": [text_encoder], "lr": 5e-5}])


def pairs(total: int) -> dict[str, tuple]:
    """``{label: (floored factory, stock factory)}``, each factory taking an optimizer."""
    from diffusers import optimization as stock

    from sdsched_plugin import schedulers as ours

    steps = {"num_warmup_steps": total // 20, "num_training_steps": total}
    floor = {"min_value": MIN_VALUE, **steps}
    return {
        "linear": (
            lambda opt: ours.LinearFloor(opt, **floor),
            lambda opt: stock.get_linear_schedule_with_warmup(opt, **steps),
        ),
        "cosine": (
            lambda opt: ours.CosineFloor(opt, **floor),
            lambda opt: stock.get_cosine_schedule_with_warmup(opt, **steps),
        ),
        "cosine_with_restarts": (
            lambda opt: ours.CosineWithRestartsFloor(opt, num_cycles=CYCLES, **floor),
            lambda opt: stock.get_cosine_with_hard_restarts_schedule_with_warmup(opt, num_cycles=CYCLES, **steps),
        ),
        "cosine_with_restarts + controls": (
            lambda opt: ours.CosineWithRestartsFloor(opt, num_cycles=CYCLES, **CONTROLS, **floor),
            lambda opt: stock.get_cosine_with_hard_restarts_schedule_with_warmup(opt, num_cycles=CYCLES, **steps),
        ),
        "polynomial": (
            lambda opt: ours.PolynomialFloor(opt, power=1.0, **floor),
            lambda opt: stock.get_polynomial_decay_schedule_with_warmup(opt, power=1.0, **steps),
        ),
        # diffusers has no REX: against stock cosine, the schedule it would replace
        "rex (vs stock cosine)": (
            lambda opt: ours.RexFloor(opt, num_cycles=CYCLES, **floor),
            lambda opt: stock.get_cosine_schedule_with_warmup(opt, **steps),
        ),
        "cosine_with_restarts + cycle_epochs (vs stock restarts)": (
            lambda opt: ours.CosineWithRestartsFloor(opt, cycle_epochs=2, epoch_steps=max(1, total // 10), **floor),
            lambda opt: stock.get_cosine_with_hard_restarts_schedule_with_warmup(opt, num_cycles=5, **steps),
        ),
        # the text encoder's group (the second) on its own curve, floor 0.1, stopped halfway: one lambda per group
        "cosine + text encoder stop (vs stock cosine)": (
            lambda opt: ours.CosineFloor(opt, te_min_value=0.1, te_stop_steps=total // 2, te_stop_at=total // 2, te_groups=(1,), **floor),
            lambda opt: stock.get_cosine_schedule_with_warmup(opt, **steps),
        ),
    }


def describe(total: int) -> str:
    controls = " ".join(f"{key}={value}" for key, value in CONTROLS.items())
    return (
        f"{total} training steps, {total // 20} warmup, min_value={MIN_VALUE}, num_cycles={CYCLES} for the restart "
        f"schedules, restart controls: {controls}; AdamW with two param groups"
    )
