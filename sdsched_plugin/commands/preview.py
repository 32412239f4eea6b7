"""What ``sdsched preview`` computes: the run (its step count, epochs and param groups) and,
for each schedule, the multiplier of every optimizer update.

The step count is the one the training prints as "total optimization steps": with
``--max_train_epochs``, ``epochs * ceil(batches / processes / gradient accumulation)`` from the
dataset's batch count (counted by sd-scripts' own dataset code where it is importable, from the
folder layout otherwise: the caller hands the count in). Each schedule is read once, by the
same ``arguments.read_schedule`` that training uses, into a ``Request``; its curve comes from
the pure specs (ours) or the pure mirror of ``get_scheduler_fix`` (sd-scripts' own names). Nothing here imports torch for
the package's own schedules: a third-party schedule is computed by its own (torch) class.

Update k uses ``lr_i * multiplier[k]``: accelerate steps the scheduler once per process per
optimizer update, so ``multiplier[k] = curve(k * num_processes)``.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field

from ..run import param_groups as _param_groups
from ..schedule import arguments, options, registry, stock
from ..schedule.requested import curve_of
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


def param_groups(args) -> list[tuple[str, float]]:
    """(name, base LR) of each param group in the order the training script builds them: a
    LoRA's text encoder and U-Net groups with LoRA+, train_db.py's / fine_tune.py's /
    sdxl_train.py's text encoder and U-Net groups, ... (``run.param_groups``)."""
    return _param_groups.param_groups(args)


@dataclass
class Schedule:
    label: str
    settings: dict
    multipliers: list[float] | None  # None: the optimizer sets the LR (schedule-free, adafactor)
    summary: stats.Summary | None = None


def variants(args, compare: str | None) -> list[tuple[str | None, set[str], argparse.Namespace]]:
    """The main schedule and each ``--compare`` entry (``NAME[:key=value...]``), as the
    keys the entry gives and the arguments training would get. In a comparison a stock name
    shows the stock curve (floored only with ``:min_value=...``); sd-scripts' own keys
    (``min_lr_ratio``, ``lr_end``, ``num_cycles``, ...) go where training reads them. Values are
    read (and refused) where every schedule's are: ``arguments.read_schedule``."""
    result = [(None, set(), argparse.Namespace(**vars(args)))]
    for entry in filter(None, (part.strip() for part in split_outside_quotes(compare or "", ","))):
        prefix = arguments.HOOK_PREFIX if entry.startswith(arguments.HOOK_PREFIX) else ""  # its own ':' is no separator
        name, *pairs = split_outside_quotes(entry[len(prefix) :], ":")
        name = prefix + name
        variant = argparse.Namespace(**vars(args))
        variant.lr_scheduler, variant.lr_scheduler_type, variant.lr_scheduler_args = name, "", []
        custom = name.startswith(arguments.HOOK_PREFIX) or name.startswith(arguments.DOTTED_PREFIX)
        if custom:  # every key=value goes to --lr_scheduler_args, as with that flag
            variant.lr_scheduler_type, variant.lr_scheduler = name, "constant"
        if name in stock.SD_SCRIPTS_NAMES or not registry.has(name):  # the stock curve: none of our flags
            variant.lr_scheduler_min_value = None
            for key in arguments.RESTART_FLAGS:
                setattr(variant, arguments.KEY_DESTS[key], None)
        keys = set()
        for pair in pairs:
            key, sep, value = pair.partition("=")
            if not sep:
                raise options.OptionError("--compare", entry, "NAME[:key=value...], e.g. cosine_floor:min_value=0.3", "NAME[:key=value...](例: cosine_floor:min_value=0.3)")
            keys.add(key)
            if custom:
                variant.lr_scheduler_args.append(pair)
            elif key in COMPARE_KEYS:
                try:
                    value = COMPARE_NUMBERS[key](value, f"--lr_scheduler_{key}") if key in COMPARE_NUMBERS else value
                except options.OptionError as error:
                    raise blamed(error, entry, keys) from None
                setattr(variant, f"lr_scheduler_{key}", value)
            elif key in ("lr_warmup_steps", "lr_decay_steps"):
                setattr(variant, key, value)
            else:
                variant.lr_scheduler_args.append(pair)
        result.append((entry, keys, variant))
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


# --compare keys that are sd-scripts flags (--lr_scheduler_KEY): set there as text, read where
# training reads them; the two that only sd-scripts' own curves take are numbers in its parser
COMPARE_KEYS = ("min_value", "num_cycles", "power", "min_lr_ratio", "timescale", *arguments.RESTART_FLAGS)
COMPARE_NUMBERS = {"min_lr_ratio": options.min_value, "timescale": options.training_steps}


def blamed(error, entry: str, keys: set[str]):
    """An error of one ``--compare`` entry, said of that entry: ``--compare ENTRY`` for its name,
    ``--compare ENTRY KEY`` for a key it gives, ``--compare ENTRY (with --flag)`` for a value
    it takes from the command line. Never the flag the user did not type wrong."""
    flag = error.flag
    if flag in ("--lr_scheduler", "--lr_scheduler_type", stock.SCHEDULER_ARGS):  # the name, or its key=value list
        return error.blamed_on(f"--compare {entry}")
    key = flag.split(" ")[-1].removeprefix("--").removeprefix("lr_scheduler_")
    missing = isinstance(error, options.OptionError) and error.value is None  # the entry can give it
    if key in keys or flag.startswith(stock.SCHEDULER_ARGS) or missing:
        return error.blamed_on(f"--compare {entry} {key}")
    return error.blamed_on(f"--compare {entry} (with {flag})")


def schedule_of(request: arguments.Request, run: Run, entry: str | None = None) -> Schedule:
    label = entry or request.label
    if request.kind == arguments.OPTIMIZER:
        return Schedule(label, {"note": request.note}, None)
    settings, curve = curve_of(request, run.num_processes, run.steps)
    multipliers = [float(curve(k * run.num_processes)) for k in range(run.steps)]
    return Schedule(label, settings, multipliers, stats.summarize(multipliers, run.steps_per_epoch))


def schedules(args, run: Run, compare: str | None = None) -> list[Schedule]:
    """The main schedule and each ``--compare`` entry, each read once into a Request (the run's
    steps known by now) and drawn from it; an entry's mistake is said of that entry."""
    result = []
    for entry, keys, variant in variants(args, compare):
        variant.max_train_steps, variant.max_train_epochs = run.steps, None
        try:
            result.append(schedule_of(arguments.read_schedule(variant, pure=True), run, entry))
        except (options.OptionError, registry.RegistryError) as error:
            if entry is None:
                raise
            raise blamed(error, entry, keys) from None
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


# --- a resumed run ------------------------------------------------------------------------------


def resume_of(state, run: Run, schedule: Schedule) -> dict:
    """Where a resumed run (``run.resume_state.State``) continues on ``schedule`` (this run's):
    the update, its epoch, the multiplier and LRs it continues with, the updates left, and what
    the saved state's own schedule would give there when this run's settings differ from it
    (the resumed run always follows its own settings, as sd-scripts' schedulers do)."""
    update = state.update if state.update is not None else state.scheduler_step // run.num_processes
    if not 0 <= update < run.steps:
        raise options.OptionError(
            "--resume", state.where, f"a state inside this run of {run.steps} updates (it is at update {update})",
            f"この実行({run.steps} 回の更新)の途中の状態を指定してください(状態は更新 {update} 回目)",
        )  # fmt: skip
    multiplier = schedule.multipliers[update]
    result = {
        "update": update,
        "epoch": update // run.steps_per_epoch + 1 if run.steps_per_epoch else None,
        "steps_left": run.steps - update,
        "multiplier": multiplier,
        "lrs": [lr * multiplier for _, lr in run.groups],
        "saved_by": "sdsched-plugin" if state.settings else "sd-scripts' own scheduler" if state.scheduler_step is not None else None,
        "changes": [],
    }
    if state.scheduler_step is not None and state.scheduler_step != update * run.num_processes:
        result["changes"].append(f"scheduler step: {state.scheduler_step} (saved) -> {update * run.num_processes} (this run's processes)")
    if state.settings:
        current = schedule.settings or {}
        result["changes"] += [
            f"{key}: {state.settings.get(key)} (saved) -> {current.get(key)} (now)"
            for key in sorted(set(state.settings) | set(current))
            if state.settings.get(key) != current.get(key)
        ]
        if result["changes"] and state.scheduler_step is not None:
            saved_curve = registry.spec(state.settings["name"]).pure_curve(state.settings)
            result["saved_multiplier"] = float(saved_curve(state.scheduler_step))
    return result
