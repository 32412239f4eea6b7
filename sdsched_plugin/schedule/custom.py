"""Custom ``--lr_scheduler_type`` classes (torch's ``CosineAnnealingLR``, a dotted path): sd-scripts
builds them with ``--lr_scheduler_args`` alone, so nothing ties their period to the run.

One job, in two parts: ``period_warning`` (standard library) says, for the classes whose length is
one argument, when that argument does not match the run's scheduler steps and what to use (a
``T_max=10`` in a 3,000-step run cycles the LR 150 times); ``multipliers`` (imports torch, only
when called) builds the class exactly as sd-scripts' ``get_scheduler_fix`` does, on a throwaway
optimizer, and steps it as training does, for the preview.
"""

from __future__ import annotations

import ast

from .options import OptionError

# class -> (its length argument, what a mismatch does)
PERIODS = {
    "CosineAnnealingLR": ("T_max", "the LR falls to eta_min at T_max steps and climbs back, a cycle every 2 x T_max"),
    "OneCycleLR": ("total_steps", "torch stops the run with an error past total_steps; short of it the cycle is cut"),
    "LinearLR": ("total_iters", "the LR stays at end_factor after total_iters steps"),
    "PolynomialLR": ("total_iters", "the LR stays at its end after total_iters steps"),
    "CosineAnnealingWarmRestarts": ("T_0", "the first cycle ends after T_0 steps"),
}


# arguments that are LRs, not ratios: with them the groups' multipliers differ
ABSOLUTE = ("eta_min", "max_lr", "base_lr", "min_lr")


def kwargs_of(tokens: list) -> dict:
    """``--lr_scheduler_args`` as sd-scripts reads them for a custom class: ``key=value``, the value
    through ``ast.literal_eval``."""
    kwargs = {}
    for token in tokens:
        key, sep, value = str(token).partition("=")
        if not sep:
            raise OptionError("--lr_scheduler_args", token, "key=value", "key=value の形で指定してください")
        try:
            kwargs[key.strip()] = ast.literal_eval(value.strip())
        except (ValueError, SyntaxError):
            raise OptionError("--lr_scheduler_args", token, "key=<a Python literal>, as sd-scripts reads it", "key=<Python のリテラル>(sd-scripts の読み方)") from None
    return kwargs


def class_name(scheduler_type: str) -> str:
    return scheduler_type.rsplit(".", 1)[-1]


def period_warning(scheduler_type: str, kwargs: dict, scheduler_steps: int, processes: int) -> str | None:
    """One line, English / 日本語, when the class's length argument is not the run's scheduler steps
    (``scheduler_steps`` = updates x processes: accelerate steps a scheduler once per process)."""
    name = class_name(scheduler_type)
    if name not in PERIODS:
        return None
    key, effect = PERIODS[name]
    value = kwargs.get(key)
    if name == "CosineAnnealingWarmRestarts":
        if not isinstance(value, int) or value <= scheduler_steps:
            return None
    elif value == scheduler_steps or (name == "OneCycleLR" and value is None and "epochs" in kwargs):
        return None
    per = f"{scheduler_steps // processes} updates x {processes} processes" if processes > 1 else f"{scheduler_steps} updates"
    cycles = f" (about {scheduler_steps / (2 * value):.0f} cycles)" if name == "CosineAnnealingLR" and isinstance(value, int) and value > 0 else ""
    return (
        f"--lr_scheduler_type={scheduler_type}: {key}={value} but the run has {scheduler_steps} scheduler steps ({per}):"
        f" {effect}{cycles}; use {key}={scheduler_steps} / {key}={value} は実行のスケジューラのステップ数 {scheduler_steps} と"
        f"合っていません。{key}={scheduler_steps} にしてください"
    )


def multipliers(scheduler_type: str, kwargs: dict, scheduler_steps: int, base_lrs: list[float] | None = None) -> list[list[float]]:
    """The class built as sd-scripts builds it (a plain name from ``torch.optim.lr_scheduler``, else
    the dotted path imported), on an optimizer with one group per base LR (the run's param groups),
    stepped ``scheduler_steps`` times: per group, its LR at every scheduler step over its base LR.
    The groups' lists differ where the class takes absolute LRs (``eta_min``, ``max_lr``)."""
    import importlib

    import torch

    module_name, _, name = scheduler_type.rpartition(".")
    module = importlib.import_module(module_name) if module_name else torch.optim.lr_scheduler
    cls = getattr(module, name, None)
    if cls is None:
        raise OptionError("--lr_scheduler_type", scheduler_type, f"a class in {module.__name__}", f"{module.__name__} のクラスを指定してください")
    bases = [float(lr) for lr in (base_lrs or [1.0])]
    optimizer = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in bases], lr=bases[0])
    try:
        scheduler = cls(optimizer, **kwargs)
    except (TypeError, ValueError) as error:
        raise OptionError("--lr_scheduler_args", " ".join(f"{k}={v}" for k, v in kwargs.items()), f"the arguments {name} takes ({error})",
                          f"{name} が受け付ける引数を指定してください({error})") from None  # fmt: skip
    values = [[] for _ in bases]
    for _ in range(scheduler_steps):
        for group, base, out in zip(optimizer.param_groups, bases, values):
            out.append(group["lr"] / base if base else 0.0)
        optimizer.step()
        try:
            scheduler.step()
        except ValueError:  # OneCycleLR past its total_steps: training stops there too
            break
    return values
