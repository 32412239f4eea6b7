"""The curve a set of sd-scripts arguments asks for, without torch.

One job: from the arguments training would get (an ``argparse.Namespace`` with sd-scripts'
``lr_scheduler*`` attributes), the schedule's label, its settings and its ``step -> multiplier``
curve in scheduler steps: a floored schedule through the same ``arguments.read_request`` that
training uses and its pure spec; sd-scripts' own names through the pure mirror of its
``get_scheduler_fix``. Used by ``sdsched preview`` and by the kohya_ss GUI's plot, so the two
draw the same curve. Imports no torch for the package's own schedules (a third-party schedule
is computed by its own class).
"""

from __future__ import annotations

from . import arguments, curves, options, specs

DOTTED_PREFIX = "sdsched_plugin."


def curve_of(args, num_processes: int, total: int):
    """(label, settings, step -> multiplier in scheduler steps) of the schedule ``args`` ask for."""
    request = arguments.read_request(args, pure=True)
    if request is not None:
        settings = request.cls.settings(**request.kwargs(num_processes))
        return label_of(args), settings, request.cls.pure_curve(settings)
    scheduler_type = str(getattr(args, "lr_scheduler_type", "") or "")
    if scheduler_type.startswith(DOTTED_PREFIX):
        return dotted_curve(scheduler_type, args)
    if scheduler_type:
        raise options.OptionError(
            "--lr_scheduler_type",
            scheduler_type,
            f"{arguments.HOOK_PREFIX}NAME (sdsched list) or {DOTTED_PREFIX}CLASS; the preview does not build other custom schedulers",
            f"{arguments.HOOK_PREFIX}NAME(sdsched list)か {DOTTED_PREFIX}CLASS。その他のカスタムスケジューラはプレビューできません",
        )
    settings, curve = curves.sd_scripts_stock(
        args.lr_scheduler,
        num_training_steps=total * num_processes,
        lr_warmup_steps=options.warmup(getattr(args, "lr_warmup_steps", 0) or 0),
        lr_decay_steps=options.warmup(getattr(args, "lr_decay_steps", 0) or 0, "--lr_decay_steps"),
        num_cycles=options.num_cycles(getattr(args, "lr_scheduler_num_cycles", 1)),
        power=options.power(getattr(args, "lr_scheduler_power", 1.0)),
        timescale=getattr(args, "lr_scheduler_timescale", None),
        min_lr_ratio=getattr(args, "lr_scheduler_min_lr_ratio", None),
        scheduler_kwargs=curves.parse_scheduler_args(arguments.scheduler_args_of(args)),
        # transformers' polynomial reads optimizer.defaults["lr"]: sd-scripts builds the optimizer with --learning_rate
        lr_init=options.learning_rate(getattr(args, "learning_rate", None), "--learning_rate"),
    )
    return label_of(args), settings, curve


def dotted_curve(scheduler_type: str, args):
    """``--lr_scheduler_type=sdsched_plugin.CosineWithRestartsFloor``: sd-scripts' unpatched
    path passes only ``--lr_scheduler_args`` to the class, step counts included, as given."""
    class_name = scheduler_type[len(DOTTED_PREFIX) :]
    spec = specs.by_class_name(class_name)
    if spec is None:
        known = ", ".join(DOTTED_PREFIX + name for name in specs.SPECS)
        raise options.OptionError("--lr_scheduler_type", scheduler_type, f"one of: {known}", f"次のいずれか: {known}")
    values = options.parse_key_values(arguments.scheduler_args_of(args), spec.keys())
    settings = spec.settings(**values)
    return scheduler_type, settings, spec.pure_curve(settings)


def label_of(args) -> str:
    if getattr(args, "lr_scheduler_type", None):
        return args.lr_scheduler_type
    name = args.lr_scheduler
    if name in arguments.FLOORED_STOCK_NAMES and (args.lr_scheduler_min_value is not None or arguments._min_value_in_scheduler_args(args)):
        return f"{name} (floored)"
    return name
