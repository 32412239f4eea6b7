"""The curve of a schedule that was asked for, without torch.

One job: from a ``arguments.Request`` (what ``arguments.read_schedule`` read, once), its
``step -> multiplier`` curve in scheduler steps: a floored or dotted schedule through its pure
spec, sd-scripts' own names through the pure mirror of its ``get_scheduler_fix`` (``stock``).
Used by ``sdsched preview`` and by the kohya_ss GUI's plot, so the two draw the same curve.
"""

from __future__ import annotations

from . import arguments, options, stock
from .floor import warmup_steps_from


def curve_of(request: arguments.Request, num_processes: int, total: int, base_lrs: list[float] | None = None):
    """(settings, step -> multiplier in scheduler steps) of a schedule that has a curve. A custom
    class is stepped with the groups' ``base_lrs``; where its multipliers differ by group (absolute
    LRs in its arguments), ``settings["group_curves"]`` holds each group's curve and the curve is the
    first group's. A floored schedule whose text encoder has its own (``request.te_groups``): each
    group's curve there too, the curve the U-Net's."""
    if request.kind in (arguments.FLOORED, arguments.DOTTED):
        settings = request.cls.settings(**request.kwargs(num_processes))
        curve = request.cls.pure_curve(settings)
        # the text encoder on its own schedule, where the caller knows its groups (the GUI's plot draws the U-Net's curve)
        group_curves = request.cls.group_curves(settings, len(base_lrs or [1.0]), curve) if request.te_groups is not None else None
        return (dict(settings, group_curves=group_curves) if group_curves else settings), curve
    if request.kind == arguments.STOCK:
        return stock.sd_scripts_stock(request.label, num_training_steps=total * num_processes, **request.stock)
    if request.kind == arguments.MUSUBI_REX:  # absolute LRs in its warmup: each group's own multipliers
        values = request.values
        warmup = warmup_steps_from(request.lr_warmup_steps, total * num_processes)
        lr = stock.musubi_rex(total * num_processes, warmup, values["learning_rate"], values["min_lr_ratio"], values["rex_alpha"], values["rex_beta"])
        bases = [float(base) for base in (base_lrs or [values["learning_rate"]])]
        curves = [lambda step, base=base: lr(step, base) / base if base else 0.0 for base in bases]
        settings = {"name": "rex", "host": "musubi-tuner", **values, "num_warmup_steps": warmup}
        if len(bases) > 1 and len(set(bases)) > 1:
            settings["group_curves"] = curves
        return settings, curves[0]
    if request.kind == arguments.CUSTOM:  # built as sd-scripts builds it, and stepped: imports torch
        from . import custom

        kwargs = custom.kwargs_of(request.values.get("tokens", []))
        groups = custom.multipliers(request.label, kwargs, 2 * total * num_processes, base_lrs)  # past the end too (a resumed run)
        curves = [lambda step, values=values: values[min(step, len(values) - 1)] if values else 0.0 for values in groups]
        settings = {"class": request.label, **kwargs}
        if any(values != groups[0] for values in groups[1:]):
            settings["group_curves"] = curves
        return settings, curves[0]
    raise options.OptionError(
        "--lr_scheduler_type",
        request.label,
        f"{arguments.HOOK_PREFIX}NAME (sdsched list) or {arguments.DOTTED_PREFIX}CLASS; the preview does not build other custom schedulers",
        f"{arguments.HOOK_PREFIX}NAME(sdsched list)か {arguments.DOTTED_PREFIX}CLASS。その他のカスタムスケジューラはプレビューできません",
    )
