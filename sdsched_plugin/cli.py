"""``sdsched``: see a schedule before spending GPU hours on it.

``sdsched preview`` takes the flags sd-scripts takes (or its ``--config_file`` TOML, flags
overriding it, as sd-scripts does), builds the schedule with the very scheduler class and
arguments that training builds (``arguments.read_request``), and prints the LR at the key
steps, the mean multiplier, the factor needed to match ``constant``, the time spent near 0
and the mean LR of each epoch; ``--compare`` puts several schedules side by side,
``--plot`` draws them (matplotlib, ``pip install 'sdsched-plugin[plot]'``), ``--json`` prints
the numbers for other programs.
"""

from __future__ import annotations

import argparse
import json
import sys

from . import __version__, arguments, cycles, options, registry, stats
from .floor import warmup_steps_from

STOCK_NAMES = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup")
PLOT_HINT = "--plot needs matplotlib: pip install 'sdsched-plugin[plot]' / --plot には matplotlib が必要です"


class ConfigError(Exception):
    pass


def load_toml(path: str) -> dict:
    """The TOML file as a dict; a missing or malformed file is a ConfigError naming the file and line."""
    try:
        import tomllib as reader  # Python >= 3.11

        with open(path, "rb") as handle:
            return reader.load(handle)
    except ImportError:
        import toml as reader  # what sd-scripts itself reads its configs with

        with open(path, encoding="utf-8") as handle:
            return reader.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"--config_file: {path} not found / {path} が見つかりません") from None
    except ValueError as error:  # tomllib.TOMLDecodeError and toml.TomlDecodeError say the line
        raise ConfigError(f"--config_file: {path}: {error} / 設定ファイルの書式エラー") from None


def flatten(config: dict) -> dict:
    """sd-scripts' reading of a config: section names are ignored, later keys win."""
    flat = {}
    for key, value in config.items():
        if isinstance(value, dict):
            flat.update(value)
        else:
            flat[key] = value
    return flat


def add_sd_scripts_flags(parser: argparse.ArgumentParser) -> None:
    """The sd-scripts flags a schedule depends on, with sd-scripts' defaults and help."""
    parser.add_argument("--lr_scheduler", default="constant", help="scheduler to use, as in sd-scripts / 学習率のスケジューラ")
    parser.add_argument("--lr_scheduler_type", default="", help="custom scheduler (sdsched_plugin:NAME) / カスタムスケジューラ")
    parser.add_argument("--lr_scheduler_args", nargs="*", default=None, help='scheduler arguments key=value / スケジューラの追加引数')
    parser.add_argument(
        "--lr_warmup_steps",
        type=arguments.argparse_type(options.warmup),
        default=0,
        help="warmup steps, or a ratio of the steps (float < 1 or N%%) / ウォームアップのステップ数または比率",
    )
    parser.add_argument("--lr_scheduler_num_cycles", type=arguments.argparse_type(options.num_cycles), default=1, help="restarts / リスタート回数")
    parser.add_argument("--lr_scheduler_power", type=arguments.argparse_type(options.power), default=1.0, help="polynomial power")
    parser.add_argument("--lr_scheduler_min_lr_ratio", type=float, default=None, help="min LR ratio / 最小学習率の比率")
    parser.add_argument("--max_train_steps", type=int, default=1600, help="training steps / 学習ステップ数")
    parser.add_argument("--max_train_epochs", type=int, default=None, help="training epochs (needs --steps_per_epoch) / エポック数")
    parser.add_argument("--learning_rate", type=float, default=2e-6, help="learning rate / 学習率")
    parser.add_argument("--unet_lr", type=float, default=None, help="U-Net LR (LoRA) / U-Net の学習率")
    parser.add_argument("--text_encoder_lr", type=float, nargs="*", default=None, help="text encoder LR / Text Encoder の学習率")
    parser.add_argument("--optimizer_type", default="", help="optimizer (schedule-free ones use no scheduler)")
    parser.add_argument("--config_file", default=None, help="sd-scripts / kohya_ss config .toml; flags override it / 設定ファイル")
    arguments.add_flags(parser)


def build_parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The ``sdsched`` parser and its ``preview`` subparser."""
    parser = argparse.ArgumentParser(prog="sdsched", description="LR schedules with a floor for sd-scripts / 下限付き学習率スケジューラ")
    parser.add_argument("--version", action="version", version=f"sdsched-plugin {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    preview = commands.add_parser("preview", help="show the schedule your sd-scripts flags give / スケジュールを表示")
    add_sd_scripts_flags(preview)
    preview.add_argument("--steps_per_epoch", type=int, default=None, help="optimizer steps per epoch, to mark and average epochs / 1エポックのステップ数")
    preview.add_argument("--num_processes", type=int, default=1, help="GPUs (accelerate processes), as sd-scripts scales steps / プロセス数")
    preview.add_argument("--compare", default=None, help="more schedules: NAME[:key=value...][,NAME...] / 比較するスケジューラ")
    preview.add_argument("--plot", default=None, metavar="FILE.png", help="write a plot / グラフを保存")
    preview.add_argument("--plot_size", default="1200x600", help="plot size in pixels WxH / グラフのサイズ")
    preview.add_argument("--json", action="store_true", help="print JSON / JSON で出力")
    commands.add_parser("list", help="list the floored schedule names / スケジューラ名の一覧")
    commands.add_parser("doctor", help="will the plugin be active where you train? / プラグインが有効か診断")
    return parser, preview


def parse(argv: list[str]) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """Flags over the TOML, as sd-scripts' read_config_from_file does it: the TOML values become
    the defaults, so whatever the command line gives wins."""
    parser, preview = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "config_file", None):
        try:
            flat = flatten(load_toml(args.config_file))
        except ConfigError as error:
            preview.error(str(error))
        preview.set_defaults(**flat)
        args = parser.parse_args(argv)
    return preview if args.command == "preview" else parser, args


def base_lrs(args) -> list[float]:
    unet = args.unet_lr if args.unet_lr is not None else args.learning_rate
    text_encoder = args.text_encoder_lr
    if isinstance(text_encoder, (list, tuple)):
        text_encoder = text_encoder[0] if text_encoder else None
    lrs = [float(unet)]
    if text_encoder is not None:
        lrs.append(float(text_encoder))
    return lrs


def schedule_variants(args) -> list[tuple[str, argparse.Namespace]]:
    """The main schedule and each ``--compare`` entry, as namespaces training would get. In a
    comparison a stock name shows the stock curve (the floor only with ``:min_value=...``)."""
    variants = [(label(args), args)]
    for entry in filter(None, (args.compare or "").split(",")):
        name, *pairs = entry.strip().split(":")
        variant = argparse.Namespace(**vars(args))
        variant.lr_scheduler, variant.lr_scheduler_type, variant.lr_scheduler_args = name, "", []
        if not registry.has(name):  # the stock curve: none of our flags
            variant.lr_scheduler_min_value = None
            for key in arguments.RESTART_FLAGS:
                setattr(variant, arguments.KEY_DESTS[key], None)
        for pair in pairs:
            key, _, value = pair.partition("=")
            if key == "min_value":
                variant.lr_scheduler_min_value = value
            else:
                variant.lr_scheduler_args.append(pair)
        variants.append((entry.strip(), variant))
    return variants


def label(args) -> str:
    if args.lr_scheduler_type:
        return args.lr_scheduler_type
    name = args.lr_scheduler
    if name in arguments.FLOORED_STOCK_NAMES and args.lr_scheduler_min_value is not None:
        return f"{name} (floored)"
    return name


def multipliers_of(args, num_processes: int) -> tuple[dict, list[float]]:
    """(settings, multiplier at each optimizer step) from the scheduler object training builds."""
    import torch

    request = arguments.read_request(args)
    scratch = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    if request is not None:
        scheduler = request.build(scratch, num_processes)  # the constructor makes every check
        settings = dict(scheduler.sdsched)
    else:
        scheduler, settings = stock_scheduler(args, scratch, num_processes)
    curve = scheduler.lr_lambdas[0]
    # accelerate steps the scheduler once per process per optimizer step
    return settings, [float(curve(step * num_processes)) for step in range(args.max_train_steps)]


def stock_scheduler(args, optimizer, num_processes: int):
    """A stock sd-scripts schedule, from the same diffusers/transformers curves sd-scripts uses."""
    from diffusers.optimization import get_scheduler

    name = args.lr_scheduler
    if args.lr_scheduler_type or name not in STOCK_NAMES:
        raise options.OptionError(
            "--lr_scheduler" if not args.lr_scheduler_type else "--lr_scheduler_type",
            args.lr_scheduler_type or name,
            "a floored name (sdsched list) or one of " + ", ".join(STOCK_NAMES),
            "下限付きの名前(sdsched list)または次のいずれか: " + ", ".join(STOCK_NAMES),
        )
    total = args.max_train_steps * num_processes
    warmup = warmup_steps_from(options.warmup(args.lr_warmup_steps), total)
    num_cycles = options.num_cycles(args.lr_scheduler_num_cycles)
    power = options.power(args.lr_scheduler_power)
    scheduler = get_scheduler(name, optimizer, num_warmup_steps=warmup, num_training_steps=total, num_cycles=num_cycles, power=power)
    settings = {"name": name}
    if name != "constant":  # the only stock name without warmup (sd-scripts rejects one)
        settings["num_warmup_steps"] = warmup
    if name not in ("constant", "constant_with_warmup"):
        settings["num_training_steps"] = total
    if name == "cosine_with_restarts":
        settings["num_cycles"] = num_cycles
    if name == "polynomial":
        settings["power"] = power
    return scheduler, settings


def preview(args) -> dict:
    if args.max_train_epochs is not None:  # as sd-scripts does once it knows the dataset
        if not args.steps_per_epoch:
            raise options.OptionError(
                "--max_train_epochs",
                args.max_train_epochs,
                "use it with --steps_per_epoch (sd-scripts logs it as 'num batches per epoch')",
                "--steps_per_epoch と一緒に指定してください(sd-scripts のログの num batches per epoch)",
            )
        args.max_train_steps = options.training_steps(args.max_train_epochs, "--max_train_epochs") * args.steps_per_epoch
    args.max_train_steps = options.training_steps(args.max_train_steps)
    lrs = base_lrs(args)
    schedules = []
    for name, variant in schedule_variants(args):
        settings, multipliers = multipliers_of(variant, args.num_processes)
        summary = stats.summarize(multipliers, args.steps_per_epoch)
        schedules.append({"label": name, "settings": settings, "summary": summary, "multipliers": multipliers})
    return {"steps": args.max_train_steps, "steps_per_epoch": args.steps_per_epoch, "lrs": lrs, "schedules": schedules}


def describe(settings: dict) -> str:
    """The settings that shape the curve: restart controls only where they differ from the plain restarts."""
    return ", ".join(f"{k}={v}" for k, v in settings.items() if k != "name" and cycles.PLAIN.get(k, object()) != v)


def render_text(result: dict) -> str:
    lrs, per_epoch = result["lrs"], result["steps_per_epoch"]
    lines = [f"{result['steps']} steps" + (f" ({per_epoch} per epoch)" if per_epoch else "") + f", base LR {', '.join(f'{lr:g}' for lr in lrs)}"]
    for schedule in result["schedules"]:
        summary = schedule["summary"]
        lines += ["", f"== {schedule['label']}  ({describe(schedule['settings'])})", f"  {'step':>8} {'epoch':>6}  {'':12} {'multiplier':>10}  LR"]
        for key in summary.key_steps:
            epoch = key.step // per_epoch + 1 if per_epoch else "-"
            lr_text = ", ".join(f"{lr * key.multiplier:.3e}" for lr in lrs)
            lines.append(f"  {key.step:>8} {epoch:>6}  {key.label:12} {key.multiplier:>10.4f}  {lr_text}")
    lines += ["", table(result)]
    return "\n".join(lines)


def table(result: dict) -> str:
    """The comparison table: one column per schedule."""
    schedules = result["schedules"]
    rows = [
        ("mean multiplier (area vs constant)", [f"{s['summary'].mean_multiplier:.4f}" for s in schedules]),
        ("LR or steps x to match constant", [f"x{s['summary'].match_constant_factor:.3f}" for s in schedules]),
        ("steps below 10% of peak", [f"{100 * s['summary'].share_below_10pct_of_peak:.1f}%" for s in schedules]),
        ("final multiplier", [f"{s['multipliers'][-1]:.4f}" for s in schedules]),
    ]
    for epoch in range(max(len(s["summary"].epoch_means) for s in schedules)):
        rows.append((f"epoch {epoch + 1} mean LR", [f"{result['lrs'][0] * s['summary'].epoch_means[epoch]:.3e}" for s in schedules]))
    width = max(len(name) for name, _ in rows)
    columns = [max(len(s["label"]), 10) for s in schedules]
    header = " " * width + "  " + "  ".join(s["label"].rjust(w) for s, w in zip(schedules, columns))
    return "\n".join([header] + [name.ljust(width) + "  " + "  ".join(v.rjust(w) for v, w in zip(values, columns)) for name, values in rows])


def to_json(result: dict) -> str:
    out = {key: value for key, value in result.items() if key != "schedules"}
    out["schedules"] = [
        {"label": s["label"], "settings": s["settings"], **s["summary"].to_dict()} for s in result["schedules"]
    ]
    return json.dumps(out, indent=2)


def plot(result: dict, path: str, size: str) -> None:
    from .plot import plot as draw  # matplotlib only when a plot is asked for

    draw(result, path, size)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser, args = parse(argv)
    if args.command == "doctor":
        from . import doctor

        return doctor.main(args)
    if args.command == "list":
        print("\n".join(registry.names()))
        return 0
    if args.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            parser.error(PLOT_HINT)
    try:
        result = preview(args)
    except (options.OptionError, registry.UnknownSchedule) as error:
        parser.error(str(error))
    print(to_json(result) if args.json else render_text(result))
    if args.plot:
        plot(result, args.plot, args.plot_size)
        if not args.json:
            print(f"\nplot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
