"""The curve of a schedule that was asked for, without torch.

One job: from a ``arguments.Request`` (what ``arguments.read_schedule`` read, once), its
``step -> multiplier`` curve in scheduler steps: a floored or dotted schedule through its pure
spec, sd-scripts' own names through the pure mirror of its ``get_scheduler_fix`` (``stock``).
Used by ``sdsched preview`` and by the kohya_ss GUI's plot, so the two draw the same curve.
"""

from __future__ import annotations

from . import arguments, options, stock


def curve_of(request: arguments.Request, num_processes: int, total: int):
    """(settings, step -> multiplier in scheduler steps) of a schedule that has a curve."""
    if request.kind in (arguments.FLOORED, arguments.DOTTED):
        settings = request.cls.settings(**request.kwargs(num_processes))
        return settings, request.cls.pure_curve(settings)
    if request.kind == arguments.STOCK:
        return stock.sd_scripts_stock(request.label, num_training_steps=total * num_processes, **request.stock)
    raise options.OptionError(
        "--lr_scheduler_type",
        request.label,
        f"{arguments.HOOK_PREFIX}NAME (sdsched list) or {arguments.DOTTED_PREFIX}CLASS; the preview does not build other custom schedulers",
        f"{arguments.HOOK_PREFIX}NAME(sdsched list)か {arguments.DOTTED_PREFIX}CLASS。その他のカスタムスケジューラはプレビューできません",
    )
