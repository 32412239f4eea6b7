"""What ``sdsched preview`` computes: the run (its step count, epochs and param groups) and,
for each schedule, the multiplier of every optimizer update.

The step count is the one the training prints as "total optimization steps": with
``--max_train_epochs``, ``epochs * ceil(batches / processes / gradient accumulation)`` from the
dataset's batch count (counted by sd-scripts' own dataset code where it is importable, from the
folder layout otherwise: the caller hands the count in). Floored schedules come from the same
``arguments.read_request`` that training uses, their curves from the pure specs; sd-scripts'
own names from the pure mirror of its ``get_scheduler_fix``. Nothing here imports torch for
the package's own schedules: a third-party schedule is computed by its own (torch) class.

Update k uses ``lr_i * multiplier[k]``: accelerate steps the scheduler once per process per
optimizer update, so ``multiplier[k] = curve(k * num_processes)``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field

from ..schedule import arguments, curves, options, registry
from ..schedule.requested import DOTTED_PREFIX, curve_of, label_of
from . import stats


@dataclass
class Run:
    """The run a preview shows: step counts, processes and base LRs of each param group."""

    steps: int
    steps_per_epoch: int | None
    num_processes: int = 1
    groups: list[tuple[str, float]] = field(default_factory=list)
    count: object = None  # steps.RunCount when a dataset was counted
    notes: list[str] = field(default_factory=list)

    @property
    def epochs(self) -> int | None:
        return math.ceil(self.steps / self.steps_per_epoch) if self.steps_per_epoch else None


def run_of(args, num_processes: int, count=None, steps_per_epoch: int | None = None) -> Run:
    """The run's steps as sd-scripts computes them. ``count`` is the dataset's RunCount (or
    None); ``steps_per_epoch`` the preview's own flag, which overrides the count."""
    if steps_per_epoch is None and count is not None:  # sd-scripts' own arithmetic, done by the count
        return Run(count.max_train_steps, count.steps_per_epoch, num_processes, param_groups(args), count)
    if args.max_train_epochs is not None:
        epochs = options.training_steps(args.max_train_epochs, "--max_train_epochs")
        if not steps_per_epoch:
            raise options.OptionError(
                "--max_train_epochs",
                epochs,
                "give the dataset (--train_data_dir, --dataset_config or --in_json, with --train_batch_size),"
                " or the optimizer steps of one epoch as --steps_per_epoch",
                "データセット(--train_data_dir / --dataset_config / --in_json と --train_batch_size)か、"
                "1エポックのオプティマイザーのステップ数 --steps_per_epoch を指定してください",
            )
        steps = epochs * steps_per_epoch
    else:
        steps = options.training_steps(args.max_train_steps)
    return Run(steps, steps_per_epoch, num_processes, param_groups(args), count)


def _first(value):
    """--text_encoder_lr is a list in current sd-scripts, a float in older ones and TOML."""
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value


def _network_args(args) -> dict:
    pairs = {}
    for token in getattr(args, "network_args", None) or []:
        key, sep, value = str(token).partition("=")
        if sep:
            pairs[key.strip()] = value.strip()
    return pairs


def param_groups(args) -> list[tuple[str, float]]:
    """(name, base LR) of each param group in the order sd-scripts builds them. For a LoRA
    (``--network_module``): the text encoder's group first, then the U-Net's, each followed by
    its LoRA+ group; a group whose LR is 0 is dropped, as sd-scripts does ("NO LR skipping").
    Other trainings: one group at --learning_rate."""
    learning_rate = options.learning_rate(getattr(args, "learning_rate", None), "--learning_rate")
    if not getattr(args, "network_module", None):
        return [("all", learning_rate)]
    network_args = _network_args(args)
    plus = options.learning_rate(network_args.get("loraplus_lr_ratio"), "--network_args loraplus_lr_ratio")
    groups = []

    def add(name, lr, ratio):
        if lr:
            groups.append((name, lr))
            if ratio:
                groups.append((f"{name} plus", lr * ratio))

    text_encoder_trained = not getattr(args, "network_train_unet_only", False) and not getattr(args, "cache_text_encoder_outputs", False)
    if text_encoder_trained:
        text_encoder_lrs = getattr(args, "text_encoder_lr", None)
        ratio = options.learning_rate(network_args.get("loraplus_text_encoder_lr_ratio"), "--network_args loraplus_text_encoder_lr_ratio") or plus
        if isinstance(text_encoder_lrs, (list, tuple)) and len(text_encoder_lrs) > 1 and not str(args.network_module).endswith(".lora"):
            for index, lr in enumerate(text_encoder_lrs):  # networks with one LR per text encoder (FLUX.1, SD3, ...)
                add(f"textencoder{index + 1}", options.learning_rate(lr, "--text_encoder_lr"), ratio)
        else:
            text_encoder_lr = options.learning_rate(_first(text_encoder_lrs), "--text_encoder_lr")
            add("textencoder", learning_rate if text_encoder_lr is None else text_encoder_lr, ratio)
    if not getattr(args, "network_train_text_encoder_only", False):
        unet_lr = options.learning_rate(getattr(args, "unet_lr", None), "--unet_lr")
        ratio = options.learning_rate(network_args.get("loraplus_unet_lr_ratio"), "--network_args loraplus_unet_lr_ratio") or plus
        add("unet", learning_rate if unet_lr is None else unet_lr, ratio)
    return groups


@dataclass
class Schedule:
    label: str
    settings: dict
    multipliers: list[float] | None  # None: the optimizer sets the LR (schedule-free, adafactor)
    summary: stats.Summary | None = None


def optimizer_sets_lr(args) -> str | None:
    """One line for the optimizers that set the LR themselves (schedule-free, Adafactor)."""
    from ..schedule import curves

    optimizer_args = curves.parse_scheduler_args(getattr(args, "optimizer_args", None) or [], "--optimizer_args")
    return curves.optimizer_sets_lr(
        str(getattr(args, "lr_scheduler", "") or ""),
        str(getattr(args, "optimizer_type", "") or ""),
        optimizer_args,
        str(getattr(args, "lr_scheduler_type", "") or ""),
    )


def variants(args, compare: str | None) -> list[tuple[str | None, argparse.Namespace]]:
    """The main schedule and each ``--compare`` entry (``NAME[:key=value...]``), as the
    arguments training would get. In a comparison a stock name shows the stock curve (floored
    only with ``:min_value=...``); sd-scripts' own keys (``min_lr_ratio``, ``lr_end``,
    ``num_cycles``, ...) go where training reads them."""
    result = [(None, argparse.Namespace(**vars(args)))]
    for entry in filter(None, (part.strip() for part in split_outside_quotes(compare or "", ","))):
        name, *pairs = split_outside_quotes(entry, ":")
        variant = argparse.Namespace(**vars(args))
        variant.lr_scheduler, variant.lr_scheduler_type, variant.lr_scheduler_args = name, "", []
        custom = name.startswith(arguments.HOOK_PREFIX) or name.startswith(DOTTED_PREFIX)
        if custom:  # every key=value goes to --lr_scheduler_args, as with that flag
            variant.lr_scheduler_type, variant.lr_scheduler = name, "constant"
        if name in curves.SD_SCRIPTS_NAMES or not registry.has(name):  # the stock curve: none of our flags
            variant.lr_scheduler_min_value = None
            for key in arguments.RESTART_FLAGS:
                setattr(variant, arguments.KEY_DESTS[key], None)
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep:
                raise options.OptionError("--compare", entry, "NAME[:key=value...], e.g. cosine_floor:min_value=0.3", "NAME[:key=value...](例: cosine_floor:min_value=0.3)")
            if custom:
                variant.lr_scheduler_args.append(pair)
            elif key == "min_value":
                variant.lr_scheduler_min_value = value
            elif f"lr_scheduler_{key}" in COMPARE_FLAGS:
                setattr(variant, f"lr_scheduler_{key}", COMPARE_FLAGS[f"lr_scheduler_{key}"](value))
            elif key in ("lr_warmup_steps", "lr_decay_steps"):
                setattr(variant, key, options.warmup(value, f"--compare {key}"))
            else:
                variant.lr_scheduler_args.append(pair)
        result.append((entry, variant))
    return result


def split_outside_quotes(text: str, separator: str) -> list[str]:
    """``text.split(separator)``, except inside quotes: piecewise_constant's
    ``step_rules='1:10,0.1'`` holds both separators."""
    parts, current, quote = [], [], None
    for char in text:
        if quote is None and char in "'\"":
            quote = char
        elif char == quote:
            quote = None
        if char == separator and quote is None:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    return parts + ["".join(current)]


COMPARE_FLAGS = {
    "lr_scheduler_num_cycles": lambda v: options.num_cycles(v, "--compare num_cycles"),
    "lr_scheduler_power": lambda v: options.power(v, "--compare power"),
    "lr_scheduler_min_lr_ratio": lambda v: options.min_value(v, "--compare min_lr_ratio"),
    "lr_scheduler_timescale": lambda v: options.training_steps(v, "--compare timescale"),
    **{f"lr_scheduler_{key}": (lambda key: lambda v: v)(key) for key in arguments.RESTART_FLAGS},
}


def schedules(args, run: Run, compare: str | None = None) -> list[Schedule]:
    result = []
    for entry, variant in variants(args, compare):
        variant.max_train_steps, variant.max_train_epochs = run.steps, None  # the run's steps are known now
        fixed = optimizer_sets_lr(variant)
        if fixed is not None:
            result.append(Schedule(entry or label_of(variant), {"note": fixed}, None))
            continue
        label, settings, curve = curve_of(variant, run.num_processes, run.steps)
        multipliers = [float(curve(k * run.num_processes)) for k in range(run.steps)]
        summary = stats.summarize(multipliers, run.steps_per_epoch)
        result.append(Schedule(entry or label, settings, multipliers, summary))
    return result


def warnings_of(args, run: Run, shown: list[Schedule]) -> list[str]:
    """Short warnings for the traps people fall into when planning a schedule in epochs."""
    found = []
    main = shown[0]
    if main.summary is not None and run.steps_per_epoch:
        restarts = [key.step for key in main.summary.key_steps if key.label == "restart"]
        off = [step for step in restarts if step % run.steps_per_epoch]
        if off:
            where = ", ".join(f"step {step} (epoch {step // run.steps_per_epoch + 1})" for step in off[:4])
            found.append(
                f"restarts fall inside epochs: {where}; with no warmup and a cycle count that divides the {run.epochs} epochs,"
                f" each restart falls on an epoch boundary / リスタートがエポックの途中にあります({where})"
            )
    cycles = getattr(args, "lr_scheduler_num_cycles", None)
    epochs = getattr(args, "max_train_epochs", None)
    if epochs and cycles == epochs and epochs > 1 and "restarts" in str(main.settings.get("name", args.lr_scheduler)):
        found.append(
            f"lr_scheduler_num_cycles = {cycles} = the epoch count: the kohya_ss GUI writes the epoch count when"
            f' "LR # cycles" is empty, so the LR restarts every epoch; set "LR # cycles" to the restarts you want'
            f" / サイクル数がエポック数と同じです。kohya_ss GUI は「LR # cycles」が空だとエポック数を入れます"
        )
    for schedule in shown:  # sd-scripts' own restarts take any cycle count; ours refuse too many
        settings = schedule.settings
        if settings.get("name") == "cosine_with_restarts" and settings["num_cycles"] > settings["num_training_steps"] - settings["num_warmup_steps"]:
            found.append(
                f"{schedule.label}: {settings['num_cycles']} cycles in {settings['num_training_steps'] - settings['num_warmup_steps']}"
                f" decaying steps: the curve is flat or aliased and never decays / サイクル数が減衰ステップ数より多く、曲線が減衰しません"
            )
    warmup, total = main.settings.get("num_warmup_steps"), main.settings.get("num_training_steps")
    if warmup and total and warmup * 10 > total:
        found.append(
            f"the warmup is {warmup} of {total} scheduler steps ({100 * warmup / total:.0f}%), more than a tenth of the run"
            f" / ウォームアップが全体の {100 * warmup / total:.0f}% あります(1割超)"
        )
    return found
