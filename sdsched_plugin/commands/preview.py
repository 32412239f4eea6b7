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
import dataclasses
import math
from dataclasses import dataclass, field

from ..schedule import param_groups as _param_groups
from ..schedule import arguments, custom, options, registry, stock, text_encoder
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
    host: str = "sd-scripts"  # or "musubi": whose own schedule names the run's names are (musubi-tuner's rex)

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
    sdxl_train.py's text encoder and U-Net groups, ... (``schedule.param_groups``)."""
    return _param_groups.param_groups(args)


@dataclass
class Schedule:
    label: str
    settings: dict
    multipliers: list[float] | None  # None: the optimizer sets the LR (schedule-free, adafactor)
    summary: stats.Summary | None = None
    curve: object = None  # scheduler step -> multiplier, past the run's end too (a resumed run can go there)
    stock_curve: object = None  # a floored name's curve without the floor: what sd-scripts alone would run
    # per group, where they differ: a custom class with absolute LRs (``multipliers`` is the first's), the text
    # encoder on its own schedule (``multipliers`` is the U-Net's)
    group_multipliers: list | None = None


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
            for key in (*arguments.RESTART_FLAGS, *arguments.TE_FLAGS):  # the text encoder's too: the stock curve for all groups
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
    if request.updates_per_epoch is None and run.steps_per_epoch:
        request = dataclasses.replace(request, updates_per_epoch=run.steps_per_epoch)
    if request.kind == arguments.FLOORED and text_encoder.asked(request.values) and request.te_groups is None:
        names = [name for name, _ in run.groups]
        request = dataclasses.replace(request, te_groups=text_encoder.group_indices(names, text_encoder.flag_of(request.values)))
    settings, curve = curve_of(request, run.num_processes, run.steps, [lr for _, lr in run.groups])
    group_curves = settings.pop("group_curves", None)
    multipliers = [float(curve(k * run.num_processes)) for k in range(run.steps)]
    stock_curve = None
    if request.kind == arguments.FLOORED and getattr(request.cls, "pure_function", None) is not None and request.cls.plain_stock(settings):
        stock_curve = request.cls.pure_stock(settings)
    schedule = Schedule(label, settings, multipliers, stats.summarize(multipliers, run.steps_per_epoch), curve, stock_curve)
    if group_curves:  # a custom class with absolute LRs, the text encoder on its own schedule: each group's multipliers
        schedule.group_multipliers = [[float(c(k * run.num_processes)) for k in range(run.steps)] for c in group_curves]
    return schedule


def schedules(args, run: Run, compare: str | None = None) -> list[Schedule]:
    """The main schedule and each ``--compare`` entry, each read once into a Request (the run's
    steps known by now) and drawn from it; an entry's mistake is said of that entry."""
    result = []
    for entry, keys, variant in variants(args, compare):
        variant.max_train_steps, variant.max_train_epochs = run.steps, None
        try:
            result.append(schedule_of(arguments.read_schedule(variant, pure=True, host=run.host), run, entry))
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
            cure = (
                "--lr_scheduler_cycle_epochs=E puts every restart on an epoch's first step"
                if main.settings.get("name") in ("cosine_with_restarts_floor", "rex_floor")
                else f"with no warmup and a cycle count that divides the {run.epochs} epochs, each restart falls on an epoch boundary"
            )
            found.append(f"restarts fall inside epochs: {where}; {cure} / リスタートがエポックの途中にあります({where})")
    if "class" in main.settings:  # a custom --lr_scheduler_type class: its period against the run
        kwargs = {key: value for key, value in main.settings.items() if key != "class"}
        period = custom.period_warning(main.settings["class"], kwargs, run.steps * run.num_processes, run.num_processes)
        found += [period] if period else []
        if main.group_multipliers:
            found.append(
                f"{main.settings['class']} takes absolute LRs ({', '.join(k for k in kwargs if k in custom.ABSOLUTE)}): each param group's"
                " multiplier differs; the table and the plot show the first group's, --json --trace gives every group's"
                " (group_multipliers) / 絶対値の学習率を取るクラスのため、グループごとに倍率が異なります"
            )
    if text_encoder.asked(main.settings) and not main.settings.get("te_groups"):
        found.append(text_encoder.describe(main.settings))  # no group trains a text encoder: its flags do nothing
    elif text_encoder.asked(main.settings) and text_encoder.never_stops(main.settings, run.num_processes):
        found.append(text_encoder.describe(main.settings, run.num_processes, run.steps_per_epoch, [name for name, _ in run.groups]))
    if main.settings.get("host") == "musubi-tuner" and main.settings.get("num_warmup_steps"):
        found.append(
            f"musubi-tuner's rex warms up in absolute LRs, from --learning_rate x {main.settings['min_lr_ratio'] or 0.01:g} to"
            f" --learning_rate, the same for every param group whatever its own LR; after the warmup each group follows its own"
            f" LR; its first update runs at {main.multipliers[0]:.3f} x --learning_rate (RexLR's step 0 falls outside its warmup)"
            f" / musubi-tuner の rex のウォームアップは絶対値で、全パラメータグループが同じ学習率になります"
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


def resume_of(state, run: Run, schedule: Schedule, skip_until_initial_step: bool = False) -> dict:
    """What a resumed run (``run.resume_state.State``) does on ``schedule`` (this run's), as
    train_network.py runs it: the scheduler goes on from its saved step; the updates trained are
    those left (``--skip_until_initial_step``) or, without it, the whole run again from the epoch
    the state is in (sd-scripts counts its steps from 0 then), so the scheduler can go past the
    run's end: ours stay at the floor there, sd-scripts' own curves do what they do past it. Also
    what the saved state's own schedule would give where this run's settings differ from it."""
    update = state.update if state.update is not None else state.scheduler_step // run.num_processes
    if not 0 <= update < run.steps:
        raise options.OptionError(
            "--resume", state.where, f"a state inside this run of {run.steps} updates (it is at update {update})",
            f"この実行({run.steps} 回の更新)の途中の状態を指定してください(状態は更新 {update} 回目)",
        )  # fmt: skip
    start = state.scheduler_step if state.scheduler_step is not None else update * run.num_processes
    if skip_until_initial_step or not run.steps_per_epoch:
        trained = run.steps - update
    else:  # sd-scripts: epoch_to_start = initial_step // steps per epoch, then global_step from 0
        trained = min(run.steps, (run.epochs - update // run.steps_per_epoch) * run.steps_per_epoch)
    steps = [start + k * run.num_processes for k in range(trained)]
    past = [step for step in steps if step >= run.steps * run.num_processes]
    multipliers = [float(schedule.curve(step)) for step in steps]
    result = {
        "update": update,
        "epoch": update // run.steps_per_epoch + 1 if run.steps_per_epoch else None,
        "scheduler_step": start,
        "updates_trained": trained,
        "steps_left": run.steps - update,
        "past_the_end": len(past),
        "multiplier": multipliers[0],
        "lrs": [lr * multipliers[0] for _, lr in run.groups],
        "multipliers": multipliers,
        "saved_by": "sdsched-plugin" if state.settings else "sd-scripts' own scheduler" if state.scheduler_step is not None else None,
        "changes": [],
    }
    if past:
        result["past_the_end_multiplier"] = float(schedule.curve(past[-1]))
        if schedule.stock_curve is not None:
            result["without_the_plugin"] = float(schedule.stock_curve(past[-1]))
    if state.settings:
        current = schedule.settings or {}
        result["changes"] = [
            f"{key}: {state.settings.get(key)} (saved) -> {current.get(key)} (now)"
            for key in sorted(set(state.settings) | set(current))
            if state.settings.get(key) != current.get(key)
        ]
        if result["changes"] and state.scheduler_step is not None:
            result["saved_multiplier"] = float(registry.spec(state.settings["name"]).pure_curve(state.settings)(state.scheduler_step))
    return result
