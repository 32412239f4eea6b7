"""``sdsched``: see a schedule before spending GPU hours on it.

``sdsched preview`` takes the run three ways, each read as training reads it: sd-scripts'
flags, its ``--config_file`` TOML (kohya_ss GUI configs included; flags override it), or the
whole training command after ``--`` (``-- accelerate launch --num_processes=2 ...
train_network.py --config_file=...``). Where sd-scripts is importable (the script's folder,
``SD_SCRIPTS_DIR`` or the current folder) the command, or the flag list as the command of
train_network.py (``--script``), is parsed by the script's own ``setup_parser()`` and the
dataset counted by sd-scripts' own code (``sd_scripts``); otherwise from sdsched's reading of
the flags (the others listed as ignored) and the folder layout (``run.layout``).

It prints the run (steps per epoch and in total, the base LR of each param group), each
schedule's key steps with their epochs, the mean multiplier, the factor to match
``constant``, each epoch's mean LR and warnings for the usual traps; ``--compare`` adds
schedules, ``--plot`` draws them, ``--json`` (``--trace``: every update's multiplier) prints
the numbers for other programs. Flags and TOML read by sdsched, without a dataset, never
import torch.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from . import __version__
from .schedule import arguments, cycles, options, registry, saved, text_encoder
from .run import command, dataset_config
from .commands import preview

PLOT_HINT = "--plot needs matplotlib: pip install 'sdsched-plugin[plot]' / --plot には matplotlib が必要です"
PLOT_FORMATS = (".png", ".svg", ".pdf")
DATASET_FLAGS = ("train_data_dir", "dataset_config", "in_json")


class ConfigError(Exception):
    pass


def load_toml(path: str) -> dict:
    """The TOML file as a dict; a missing or malformed file is a ConfigError naming the file and line."""
    try:
        return dataset_config.read_toml(path)
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


def _converted(convert, flag: str):
    """An argparse type from a converter that takes (value, flag)."""
    return arguments.argparse_type(lambda value: convert(value, flag))


def add_sd_scripts_flags(parser: argparse.ArgumentParser) -> None:
    """The sd-scripts flags (train_network.py's) that the run's schedule and step count depend on,
    with sd-scripts' defaults: sdsched's own reading when sd-scripts is not importable."""
    add = parser.add_argument
    add("--lr_scheduler", default="constant", help="scheduler to use, as in sd-scripts / 学習率のスケジューラ")
    add("--lr_scheduler_type", default="", help="custom scheduler (sdsched_plugin:NAME) / カスタムスケジューラ")
    add("--lr_scheduler_args", nargs="*", default=None, help="scheduler arguments key=value / スケジューラの追加引数")
    add("--lr_warmup_steps", type=arguments.argparse_type(options.warmup), default=0,
        help="warmup steps, or a ratio of the steps (float < 1 or N%%) / ウォームアップのステップ数または比率")
    add("--lr_decay_steps", type=_converted(options.warmup, "--lr_decay_steps"), default=0,
        help="decay steps of warmup_stable_decay, or a ratio (float < 1) / 減衰ステップ数または比率")
    add("--lr_scheduler_num_cycles", type=arguments.argparse_type(options.num_cycles), default=1, help="restarts / リスタート回数")
    add("--lr_scheduler_power", type=arguments.argparse_type(options.power), default=1.0, help="polynomial power")
    add("--lr_scheduler_timescale", type=_converted(options.training_steps, "--lr_scheduler_timescale"), default=None,
        help="inverse_sqrt timescale (default: warmup steps) / inverse_sqrt のタイムスケール")
    add("--lr_scheduler_min_lr_ratio", type=_converted(options.min_value, "--lr_scheduler_min_lr_ratio"), default=None,
        help="min LR ratio of cosine_with_min_lr and warmup_stable_decay / 最小学習率の比率")
    add("--max_train_steps", type=_converted(options.training_steps, "--max_train_steps"), default=1600, help="training steps / 学習ステップ数")
    add("--max_train_epochs", type=_converted(options.training_steps, "--max_train_epochs"), default=None, help="training epochs / エポック数")
    add("--learning_rate", type=arguments.argparse_type(options.learning_rate), default=2e-6, help="learning rate / 学習率")
    add("--unet_lr", type=_converted(options.learning_rate, "--unet_lr"), default=None, help="U-Net LR (LoRA) / U-Net の学習率")
    add("--text_encoder_lr", type=_converted(options.learning_rate, "--text_encoder_lr"), nargs="*", default=None,
        help="text encoder LR, one or two values (LoRA) / Text Encoder の学習率")
    add("--network_module", default="networks.lora", help="network module of a LoRA (what train_network.py trains) / ネットワークのモジュール")
    add("--network_args", nargs="*", default=None, help="network arguments (loraplus_lr_ratio=...) / ネットワークの追加引数")
    add("--network_train_unet_only", action="store_true", help="train the U-Net only / U-Net のみ学習")
    add("--network_train_text_encoder_only", action="store_true", help="train the text encoder only / Text Encoder のみ学習")
    add("--optimizer_type", default="", help="optimizer (schedule-free ones use no scheduler) / オプティマイザー")
    add("--config_file", default=None, help="sd-scripts / kohya_ss config .toml; flags override it / 設定ファイル")
    # the dataset: counted from the folder layout, or by sd-scripts itself where it is importable
    add("--train_data_dir", default=None, help="folder of N_name repeat folders / 学習画像のフォルダ")
    add("--reg_data_dir", default=None, help="regularization images / 正則化画像のフォルダ")
    add("--dataset_config", default=None, help="dataset config .toml / データセット設定ファイル")
    add("--in_json", default=None, help="fine-tuning metadata .json / メタデータファイル")
    add("--train_batch_size", type=_converted(options.training_steps, "--train_batch_size"), default=1, help="batch size / バッチサイズ")
    add("--gradient_accumulation_steps", type=_converted(options.training_steps, "--gradient_accumulation_steps"), default=1,
        help="gradient accumulation / 勾配の累積ステップ数")
    add("--resolution", default=None, help="SIZE or W,H / 解像度")
    add("--enable_bucket", action="store_true", help="aspect-ratio buckets / bucketを有効にする")
    add("--min_bucket_reso", type=int, default=256, help="smallest bucket side / bucketの最小解像度")
    add("--max_bucket_reso", type=int, default=1024, help="largest bucket side / bucketの最大解像度")
    add("--bucket_reso_steps", type=int, default=64, help="bucket side step / bucketの解像度の単位")
    add("--bucket_no_upscale", action="store_true", help="no upscaling into buckets / bucketで拡大しない")
    add("--caption_extension", default=".caption", help="caption extension / キャプションの拡張子")
    add("--resume", default=None, help="the state folder a run resumes from (or the update to resume at) / 再開する状態のフォルダ")
    add("--skip_until_initial_step", action="store_true", help="a resumed run trains only the updates left / 再開時に残りのステップだけ学習する")
    arguments.add_flags(parser)


def _plot_path(value: str) -> str:
    path = Path(value)
    if path.suffix.lower() not in PLOT_FORMATS:
        raise argparse.ArgumentTypeError(
            f"{value!r}: the file name must end in {', '.join(PLOT_FORMATS)} / ファイル名の拡張子は {', '.join(PLOT_FORMATS)} のいずれか"
        )
    if not path.parent.resolve().is_dir():
        raise argparse.ArgumentTypeError(f"{value!r}: the folder {path.parent} does not exist / フォルダ {path.parent} がありません")
    return value


def _plot_size(value: str) -> tuple[int, int]:
    width, sep, height = str(value).lower().partition("x")
    if sep and width.isdigit() and height.isdigit() and 100 <= int(width) <= 8000 and 100 <= int(height) <= 8000:
        return int(width), int(height)
    raise argparse.ArgumentTypeError(
        f"got {value!r}; allowed: WIDTHxHEIGHT in pixels, each from 100 to 8000, e.g. 1200x600"
        f" / 幅x高さ(ピクセル、各 100〜8000、例: 1200x600)"
    )


def add_preview_flags(parser: argparse.ArgumentParser) -> None:
    """The preview's own flags (the rest are the training's)."""
    add = parser.add_argument
    add("--steps_per_epoch", type=_converted(options.training_steps, "--steps_per_epoch"), default=None,
        help="optimizer steps per epoch, instead of counting the dataset / 1エポックのステップ数(データセットを数えない場合)")
    add("--num_processes", type=_converted(options.training_steps, "--num_processes"), default=None,
        help="GPUs (accelerate processes); after -- accelerate's flags give it / プロセス数")
    add("--compare", default=None, help="more schedules: NAME[:key=value...][,NAME...] / 比較するスケジューラ")
    add("--plot", type=_plot_path, default=None, metavar="FILE.png", help="write a plot (.png, .svg, .pdf) / グラフを保存")
    add("--plot_size", type=_plot_size, default=(1200, 600), help="plot size in pixels WxH / グラフのサイズ")
    add("--json", action="store_true", help="print JSON / JSON で出力")
    add("--trace", action="store_true", help="with --json: every update's multiplier / 全ステップの倍率を出力")
    add("--script", default=None, metavar="SCRIPT.py",
        help="the sd-scripts training script whose parser reads a flag list (default train_network.py; sd-scripts found"
             " in SD_SCRIPTS_DIR or the current folder) / フラグを読む学習スクリプト")
    add("--architecture", default=None, help="musubi-tuner: the architecture of its latent caches (hv, wan, fp, qi, qie, ...) / キャッシュのアーキテクチャ")
    add("--from", dest="from_model", default=None, metavar="MODEL.safetensors",
        help="the schedule a model was trained with, from its metadata; flags given too override it / モデルのメタデータから学習時のスケジュールを表示")
    add("--to-toml", "--to_toml", dest="to_toml", default=None, metavar="FILE.toml",
        help="write the schedule's flags as sd-scripts TOML keys, for --config_file / スケジュールの設定を TOML に書き出す")


def build_parser() -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    """The ``sdsched`` parser and its ``preview`` subparser."""
    parser = argparse.ArgumentParser(prog="sdsched", description="LR schedules with a floor for sd-scripts / 下限付き学習率スケジューラ")
    parser.add_argument("--version", action="version", version=f"sdsched-plugin {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    preview_parser = commands.add_parser(
        "preview",
        allow_abbrev=False,  # a flag list holds sd-scripts' flags: --text_encoder is not --text_encoder_lr
        help="show the schedule your sd-scripts flags give / スケジュールを表示",
        usage="sdsched preview [preview flags] [sd-scripts flags]  |  sdsched preview [preview flags] -- TRAINING COMMAND",
        epilog="e.g. sdsched preview -- accelerate launch --num_processes=2 train_network.py --config_file=config.toml",
    )
    add_preview_flags(preview_parser)
    add_sd_scripts_flags(preview_parser)
    commands.add_parser("list", help="list the floored schedule names / スケジューラ名の一覧")
    commands.add_parser("doctor", help="will the plugin be active where you train? / プラグインが有効か診断")
    return parser, preview_parser


def preview_only_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sdsched preview", add_help=False, allow_abbrev=False)
    add_preview_flags(parser)
    return parser


def with_config(parser: argparse.ArgumentParser, argv: list[str], known_only: bool = False) -> argparse.Namespace:
    """Flags over the TOML, as sd-scripts' read_config_from_file does it: the TOML values become
    the defaults, so whatever the command line gives wins."""
    parse = parser.parse_known_args if known_only else (lambda a: (parser.parse_args(a), []))
    args, _ = parse(argv)
    if getattr(args, "config_file", None):
        try:
            parser.set_defaults(**flatten(load_toml(args.config_file)))
        except ConfigError as error:
            parser.error(str(error))
        args, _ = parse(argv)
    return args


def parse(argv: list[str]) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """The flag form: ``sdsched preview [preview and sd-scripts flags]`` (or ``sdsched list``)."""
    parser, preview_parser = build_parser()
    if not argv or argv[0] != "preview":
        return parser, parser.parse_args(argv)
    args = with_config(preview_parser, argv[1:])
    args.command = "preview"
    return preview_parser, args


def has_dataset(args) -> bool:
    return any(getattr(args, name, None) for name in DATASET_FLAGS)


@contextlib.contextmanager
def host_output(json_out: bool):
    """sd-scripts logs through rich to stdout: keep --json's stdout clean."""
    if json_out:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    else:
        yield


@dataclass
class ReadRun:
    """A run as the preview read it, from either form."""

    parser: argparse.ArgumentParser  # the parser whose usage an error shows (exit 2)
    flags: argparse.Namespace  # the preview's own flags
    args: argparse.Namespace  # the training's arguments
    num_processes: int
    read_by: str  # where the arguments were read, for the output
    count: object = None  # the dataset's steps.RunCount, when it was counted
    host: str = "sd-scripts"  # "musubi": a musubi-tuner command


SD_SCRIPTS_HINT = (
    "run the preview in the sd-scripts folder, or set SD_SCRIPTS_DIR=/path/to/sd-scripts, to read every flag with"
    " the training script's own parser / sd-scripts のフォルダで実行するか SD_SCRIPTS_DIR を設定すると、すべての"
    "フラグを学習スクリプト自身のパーサーで読みます"
)


def read_run(argv: list[str]) -> ReadRun:
    """The run from either form: a flag list (``sdsched preview [flags]``) or a training command
    after ``--``. Where sd-scripts is found, both are read by the training script's own parser;
    otherwise by sdsched's reading of the flags that shape the schedule. Errors exit 2 through
    the parser that read the flag."""
    if "--" in argv:
        own, training = argv[: argv.index("--")], argv[argv.index("--") + 1 :]
        parser = preview_only_parser()
        flags = parser.parse_args(own)
        try:
            script = command.read_command(training)
        except options.OptionError as error:
            parser.error(str(error))
    else:
        flags, rest = preview_only_parser().parse_known_args(argv)
        if flags.from_model:
            return read_model(flags, rest)
        script = bare_command(flags, rest)
        if script is None:
            return read_flags(argv)
    if flags.num_processes:
        script = command.TrainingCommand(script.script, script.script_args, flags.num_processes, script.launcher, "--num_processes")
    folder = None if command.is_musubi(script.script) else command.find_sd_scripts(script.script)
    read = read_with_sd_scripts(flags, script, folder) if folder is not None else None
    if read is not None:
        return read
    return read_without_sd_scripts(flags, script) if "--" in argv else read_flags(argv)


def read_model(flags: argparse.Namespace, rest: list[str]) -> ReadRun:
    """``--from MODEL``: the flags saved in the model's metadata (ours exactly, or sd-scripts' ss_
    keys with what they lack named once on stderr), then the flags given (they win). Read by
    sdsched: the model's training command is not at hand."""
    from .run import model_file

    parser = preview_only_parser()
    try:
        metadata = model_file.read_metadata(flags.from_model)
        if saved.KEY in metadata:
            read = saved.read_record(metadata[saved.KEY])
        elif saved.is_sd_scripts_model(metadata):
            read = saved.read_ss_keys(metadata)
        else:
            raise options.OptionError(
                "--from", flags.from_model,
                f"a model trained by sd-scripts (ss_ keys) or with sdsched-plugin ({saved.KEY}); this one has neither",
                "sd-scripts か sdsched-plugin で学習したモデルを指定してください(このモデルには学習の記録がありません)",
            )  # fmt: skip
    except ValueError as error:  # options.OptionError, or a record that is not JSON
        parser.error(str(error) if isinstance(error, options.OptionError) else f"--from: {flags.from_model}: {saved.KEY} unreadable: {error}")
    for line in read.assumed:
        print(f"sdsched preview: {line}", file=sys.stderr)
    read.steps_per_epoch = saved.steps_per_epoch_of(metadata) or read.steps_per_epoch
    if flags.steps_per_epoch is None and read.steps_per_epoch:
        flags.steps_per_epoch = read.steps_per_epoch
    _, full = build_parser()
    args = with_config(full, [*read.argv, *rest])
    processes = flags.num_processes or read.num_processes
    return ReadRun(full, flags, args, processes, f"{Path(flags.from_model).name} ({read.source}{', ' + read.made_by if read.made_by else ''})")


def bare_command(flags: argparse.Namespace, rest: list[str]) -> command.TrainingCommand | None:
    """A flag list as the command it is part of, where sd-scripts is found: the script of
    ``--script``, or the one the list names (a command pasted without ``--``), else
    train_network.py. None where sd-scripts is not found (sdsched reads the flags itself)."""
    if rest and not rest[0].startswith("-") and any(token.lower().endswith(".py") for token in rest):
        return command.read_command(rest)
    script = Path(flags.script or "train_network.py")
    folder = command.find_sd_scripts(script if script.parent != Path(".") else None)
    if folder is None:
        if flags.script:
            preview_only_parser().error(f"--script: {flags.script}: sd-scripts not found; {SD_SCRIPTS_HINT}")
        return None
    return command.TrainingCommand(folder / script.name, rest, flags.num_processes or 1, [], "--num_processes")


def read_flags(argv: list[str]) -> ReadRun:
    """sdsched's own reading of a flag list (sd-scripts not found): the flags that shape the
    schedule and the step count, strict; the other sd-scripts flags listed once as ignored;
    a flag sd-scripts does not have is an error."""
    _, parser = build_parser()
    ignored = ignored_flags(parser, parser.parse_known_args(argv)[1])
    args = with_config(parser, argv, known_only=True)
    if ignored:
        print(f"sdsched preview: ignored (sd-scripts not found; they do not shape the schedule): {', '.join(ignored)}; {SD_SCRIPTS_HINT}", file=sys.stderr)
    return ReadRun(parser, args, args, args.num_processes or 1, "flags")


def ignored_flags(parser: argparse.ArgumentParser, unknown: list[str]) -> list[str]:
    """The sd-scripts flags among ``unknown`` (argparse's leftovers: flags with their values);
    an error, with the close names, for one that sd-scripts does not have either."""
    names, known = [], sd_scripts_flags()
    for token in unknown:
        if not token.startswith("-"):
            if not names:  # a value with no flag before it
                parser.error(f"unrecognized arguments: {token}")
            continue
        name = token.partition("=")[0]
        if name not in known:
            import difflib

            close = difflib.get_close_matches(name, sorted(known | set(parser._option_string_actions)), n=3, cutoff=0.7)
            hint = f"; did you mean: {', '.join(close)}?" if close else "; it is no flag of sd-scripts' training scripts / sd-scripts のフラグではありません"
            parser.error(f"unrecognized arguments: {token}{hint}")
        if name not in names:
            names.append(name)
    return names


def sd_scripts_flags() -> set[str]:
    """sd-scripts' flags, from the list that ships with the package (sd_scripts_flags.txt)."""
    text = (Path(__file__).parent / "sd_scripts_flags.txt").read_text(encoding="utf-8")
    return {line.strip() for line in text.splitlines() if line.startswith("--")}


def read_without_sd_scripts(flags: argparse.Namespace, script: command.TrainingCommand) -> ReadRun:
    """A pasted command where sd-scripts is not importable: sdsched's reading (the command has
    flags we do not know), and musubi-tuner's dataset config counted from its caches."""
    _, fallback = build_parser()
    args = with_config(fallback, script.script_args, known_only=True)
    musubi = command.is_musubi(script.script)
    if "network" not in script.script.name or musubi:  # one param group
        args.network_module = None
    if not musubi:
        return ReadRun(fallback, flags, args, script.num_processes, f"{script.script.name} (read by sdsched: sd-scripts not found)")
    count = None
    if args.dataset_config and flags.steps_per_epoch is None:
        from .run import musubi as musubi_count

        architecture = flags.architecture or command.musubi_architecture(script.script)
        try:
            count = musubi_count.count_musubi(args, script.num_processes, architecture)
        except options.OptionError as error:
            fallback.error(str(error))
        args.train_data_dir = args.dataset_config = None  # counted: not an sd-scripts dataset
    return ReadRun(fallback, flags, args, script.num_processes, f"{script.script.name} (musubi-tuner, read by sdsched)", count, "musubi")


def check_config_file(parser: argparse.ArgumentParser, script_args: list[str]) -> None:
    """The script's --config_file, read first: sd-scripts stops on a missing one with exit 1 and a
    log line, and on a malformed one with a traceback; here both are one line naming the file."""
    reader = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    reader.add_argument("--config_file", default=None)
    path = reader.parse_known_args(script_args)[0].config_file
    if path:
        try:  # the name as sd-scripts completes it
            load_toml(path if path.endswith(".toml") else path + ".toml")
        except ConfigError as error:
            parser.error(str(error))


def read_with_sd_scripts(flags: argparse.Namespace, script: command.TrainingCommand, folder: Path) -> ReadRun | None:
    """The command as the training script reads it (its own parser and TOML reading), and its
    dataset counted by sd-scripts' own code (where that code cannot count it, one line and the
    flags give the steps). None, after one line, where the script itself cannot be read."""
    from .run import sd_scripts  # sd-scripts' own parser and dataset code: imports what it imports

    parser = preview_only_parser()
    check_config_file(parser, script.script_args)
    with host_output(flags.json):
        try:
            args, module = sd_scripts.read_training_args(folder / script.script.name, script.script_args, script.num_processes)
        except sd_scripts.Fallback as note:  # a script that does not import, or has no parser: sdsched reads the flags
            print(f"sdsched preview: {note}", file=sys.stderr)
            return None
        count = None
        if has_dataset(args) and flags.steps_per_epoch is None:
            try:
                count = sd_scripts.count_run(args, script.num_processes, trainer=sd_scripts.trainer_of(module))
            except options.OptionError as error:
                parser.error(str(error))
            except sd_scripts.Fallback as note:
                print(f"sdsched preview: {note}", file=sys.stderr)
                for name in DATASET_FLAGS:  # not counted: the flags decide the steps
                    setattr(args, name, None)
    return ReadRun(parser, flags, args, script.num_processes, f"{script.script.name} (sd-scripts at {folder})", count)


def write_toml(path: str, result: dict) -> None:
    try:
        Path(path).write_text(saved.to_toml(result["toml"]), encoding="utf-8")
    except OSError as error:
        preview_only_parser().error(f"--to-toml: {path}: {error.strerror or error} / 書き込めません")
    print(f"sdsched preview: wrote the schedule's flags to {path} (for --config_file) / スケジュールの設定を書き出しました", file=sys.stderr)


def resume_of(args, run: preview.Run, schedule: preview.Schedule) -> dict | None:
    """sd-scripts' --resume (a state folder, or an update number): where the run continues."""
    if not getattr(args, "resume", None) or schedule.multipliers is None:
        return None
    from .run import resume_state  # reading scheduler.bin imports torch

    return preview.resume_of(resume_state.read(str(args.resume)), run, schedule, bool(getattr(args, "skip_until_initial_step", False)))


def compute(argv: list[str]) -> dict:
    read = read_run(argv)
    args, flags, count = read.args, read.flags, read.count
    try:
        if count is None and has_dataset(args) and flags.steps_per_epoch is None:
            from .run import layout

            count = layout.count(args, read.num_processes)
        run = preview.run_of(args, read.num_processes, count, flags.steps_per_epoch)
        run.host = read.host
        shown = preview.schedules(args, run, flags.compare)
        warnings = preview.warnings_of(args, run, shown)
        resume = resume_of(args, run, shown[0])
    except (options.OptionError, registry.RegistryError) as error:
        read.parser.error(str(error))
    result = result_of(run, shown, warnings, read.read_by)
    if run.count is not None and getattr(run.count, "datasets", None):
        from .run import exposure  # the images of the counted run, placed in its updates

        for entry in result["schedules"]:
            if entry["multipliers"] is not None:
                entry["exposure"] = exposure.exposure(run.count, entry["multipliers"])
    if resume is not None:
        result["resume"] = resume
    result["toml"] = saved.flags_of(args, steps=run.steps)
    return result


def result_of(run: preview.Run, shown: list, warnings: list[str], source: str) -> dict:
    count = run.count
    return {
        "steps": run.steps,
        "steps_per_epoch": run.steps_per_epoch,
        "epochs": run.epochs,
        "num_processes": run.num_processes,
        "lrs": [lr for _, lr in run.groups],
        "groups": [name for name, _ in run.groups],
        "read_by": source,
        "dataset": dataset_json(count),
        "warnings": warnings,
        "schedules": [
            {"label": s.label, "settings": s.settings, "summary": s.summary, "multipliers": s.multipliers,
             **({"group_multipliers": s.group_multipliers} if s.group_multipliers else {})} for s in shown  # fmt: skip
        ],
    }


def dataset_json(count) -> dict | None:
    """The dataset's count for --json: sd-scripts' numbers, where they came from, and why they
    are an estimate when they are."""
    if count is None:
        return None
    keys = ("batches", "batches_per_epoch", "steps_per_epoch", "max_train_steps", "epochs", "num_train_images", "num_reg_images", "source", "estimate")
    out = {key: getattr(count, key) for key in keys}
    out["notes"] = list(count.notes)
    out["datasets"] = [
        {"kind": d.kind, "batch_size": d.batch_size, "resolution": list(d.resolution), "enable_bucket": d.enable_bucket,
         "num_train_images": d.num_train_images, "num_reg_images": d.num_reg_images, "batches": d.batches,
         "buckets": [[list(reso), n] for reso, n in d.buckets]}
        for d in count.datasets
    ]  # fmt: skip
    return out


def describe(settings: dict) -> str:
    """The settings that shape the curve: restart controls only where they differ from the plain restarts."""
    hidden = ("name", *text_encoder.GIVEN_KEYS)  # the text encoder's groups and stop: its own line says them
    return ", ".join(f"{k}={v}" for k, v in settings.items() if k not in hidden and cycles.PLAIN.get(k, object()) != v)


def _epoch_of(step: int, per_epoch) -> str:
    return f"{step // per_epoch + 1}" if per_epoch else "-"


def render_text(result: dict) -> str:
    lrs, per_epoch = result["lrs"], result["steps_per_epoch"]
    run = f"{result['steps']} optimizer steps"
    if per_epoch:
        run += f" = {result['epochs']} epochs x {per_epoch} steps" if result["steps"] % per_epoch == 0 else f" ({per_epoch} per epoch, {result['epochs']} epochs)"
    run += f", {result['num_processes']} process{'es' if result['num_processes'] > 1 else ''}"
    lines = [f"run: {run} / 総ステップ数", f"read by: {result['read_by']}"]
    dataset = result.get("dataset")
    if dataset:
        how = "counted by sd-scripts" if dataset["source"] == "sd-scripts" else "counted from the folder layout"
        lines.append(
            f"dataset: {how}{' (an estimate)' if dataset['estimate'] else ''}: {dataset['num_train_images']} images x repeats"
            f"{', ' + str(dataset['num_reg_images']) + ' reg images' if dataset['num_reg_images'] else ''},"
            f" {dataset['batches_per_epoch']} batches per epoch per process / データセット"
        )
        for index, d in enumerate(dataset["datasets"]):
            buckets = ", ".join(f"{w}x{h}:{n}" for (w, h), n in d["buckets"])
            lines.append(f"  dataset {index}: batch size {d['batch_size']}, {d['batches']} batches; buckets {buckets}")
        lines += [f"  note: {note}" for note in dataset["notes"]]
    lines.append("LR groups: " + ", ".join(f"{name} {lr:g}" for name, lr in zip(result["groups"], lrs)))
    for schedule in result["schedules"]:
        summary = schedule["summary"]
        if summary is None:  # the optimizer sets the LR
            lines += ["", f"== {schedule['label']}: {schedule['settings']['note']}"]
            continue
        lines += ["", f"== {schedule['label']}  ({describe(schedule['settings'])})"]
        if text_encoder.asked(schedule["settings"]) and schedule["settings"].get("te_groups"):
            lines.append("  " + text_encoder.describe(schedule["settings"], result["num_processes"], per_epoch, result["groups"]))
        lines.append(f"  {'step':>8} {'epoch':>6}  {'':12} {'multiplier':>10}  LR ({', '.join(result['groups'])})")
        for key in summary.key_steps:
            lr_text = ", ".join(f"{lr * m:.3e}" for lr, m in zip(lrs, group_multipliers_at(schedule, key.step, len(lrs))))
            lines.append(f"  {key.step:>8} {_epoch_of(key.step, per_epoch):>6}  {key.label:12} {key.multiplier:>10.4f}  {lr_text}")
    curves = [s for s in result["schedules"] if s["summary"] is not None]
    if curves:
        lines += ["", table(result, curves)]
    exposed = [(schedule["label"], schedule["exposure"]) for schedule in curves if schedule.get("exposure")]
    if exposed:
        lines += ["", *exposure_lines(exposed)]
    if result.get("resume"):
        lines += ["", *resume_lines(result["resume"], result["groups"])]
    if result["warnings"]:
        lines += [""] + [f"warning: {text}" for text in result["warnings"]]
    return "\n".join(lines)


def exposure_lines(exposed: list[tuple[str, dict]]) -> list[str]:
    """The mean LR multiplier each training image meets, per schedule; the subsets of the first."""
    lines = [f"exposure: the mean LR multiplier each training image meets ({exposed[0][1]['order']}) / 各画像が受ける学習率の平均倍率"]
    for label, e in exposed:
        lines.append(
            f"  {label}: {e['images']} images, min {e['min']:.3f}, 5% {e['p5']:.3f}, median {e['median']:.3f}, max {e['max']:.3f};"
            f" below 10% of peak {e['below_10pct']:.1%}, below 50% {e['below_50pct']:.1%}"
        )
    for subset in exposed[0][1]["subsets"] if len(exposed[0][1]["subsets"]) > 1 else []:
        lines.append(f"    {subset['subset']} (x{subset['repeats']}): median {subset['median']:.3f}, below 10% {subset['below_10pct']:.1%}, below 50% {subset['below_50pct']:.1%}")
    return lines


def resume_lines(resume: dict, groups: list[str]) -> list[str]:
    epoch = f" (epoch {resume['epoch']})" if resume["epoch"] else ""
    lrs = ", ".join(f"{name} {lr:.3e}" for name, lr in zip(groups, resume["lrs"]))
    lines = [
        f"resume: continues from update {resume['update']}{epoch} (scheduler step {resume['scheduler_step']}) at multiplier"
        f" {resume['multiplier']:.4f} ({lrs}); it trains {resume['updates_trained']} updates ({resume['steps_left']} were left)"
        f" / 再開: 更新 {resume['update']} 回目から、{resume['updates_trained']} 回学習します"
    ]
    if resume["updates_trained"] > resume["steps_left"]:
        lines.append(
            "  without --skip_until_initial_step sd-scripts counts its steps from 0 again, from the epoch the state is in,"
            " while the scheduler goes on from its saved step / --skip_until_initial_step がないと sd-scripts はステップ数を 0 から数え直します"
        )
    if resume["past_the_end"]:
        past = f"  {resume['past_the_end']} of them past the schedule's end, at multiplier {resume['past_the_end_multiplier']:.4f}"
        if "without_the_plugin" in resume:
            past += f" (sd-scripts' own curve, without the plugin: {resume['without_the_plugin']:.4f})"
        lines.append(past + " / スケジュールの終わりを過ぎた更新があります")
    if resume["saved_by"] == "sd-scripts' own scheduler":
        lines.append("  the state was saved by sd-scripts' own scheduler: this run's schedule takes over from there / 保存時は sd-scripts 自身のスケジューラです")
    if resume["changes"]:
        lines.append("  this run's settings differ from the saved state's, and the resumed run follows this run's / 保存時と設定が異なり、今回の設定で続けます:")
        lines += [f"    {change}" for change in resume["changes"]]
        if "saved_multiplier" in resume:
            lines.append(f"  the saved schedule would continue at {resume['saved_multiplier']:.4f}; this run's jumps to {resume['multiplier']:.4f}")
    elif resume["saved_by"] == "sdsched-plugin":
        lines.append("  the same settings as the saved state: the run continues bit for bit / 保存時と同じ設定: そのまま続きます")
    return lines


def group_multipliers_at(schedule: dict, step: int, groups: int) -> list[float]:
    """Each group's multiplier at ``step``: its own where the groups differ (``group_multipliers``)."""
    if schedule.get("group_multipliers"):
        return [values[step] for values in schedule["group_multipliers"]]
    return [schedule["multipliers"][step]] * groups


def epoch_mean_lrs(schedule: dict, epoch: int, result: dict) -> list[str]:
    """Each group's mean LR in ``epoch``, from its own multipliers where the groups differ."""
    if not schedule.get("group_multipliers"):
        return [f"{lr * schedule['summary'].epoch_means[epoch]:.3e}" for lr in result["lrs"]]
    per_epoch = result["steps_per_epoch"] or result["steps"]
    spans = [values[epoch * per_epoch : (epoch + 1) * per_epoch] for values in schedule["group_multipliers"]]
    return [f"{lr * sum(span) / len(span):.3e}" for lr, span in zip(result["lrs"], spans)]


def table(result: dict, schedules: list[dict]) -> str:
    """The comparison table: one column per schedule; the epoch rows give each group's mean LR."""
    rows = [
        ("mean multiplier (area vs constant)", [f"{s['summary'].mean_multiplier:.4f}" for s in schedules]),
        ("LR or steps x to match constant", [f"x{s['summary'].match_constant_factor:.3f}" for s in schedules]),
        ("steps below 10% of peak", [f"{100 * s['summary'].share_below_10pct_of_peak:.1f}%" for s in schedules]),
        ("final multiplier", [f"{s['multipliers'][-1]:.4f}" for s in schedules]),
    ]
    for epoch in range(max(len(s["summary"].epoch_means) for s in schedules)):
        rows.append((f"epoch {epoch + 1} mean LR", [" / ".join(epoch_mean_lrs(s, epoch, result)) for s in schedules]))
    width = max(len(name) for name, _ in rows)
    columns = [max(len(s["label"]), *(len(values[i]) for _, values in rows)) for i, s in enumerate(schedules)]
    header = " " * width + "  " + "  ".join(s["label"].rjust(w) for s, w in zip(schedules, columns))
    return "\n".join([header] + [name.ljust(width) + "  " + "  ".join(v.rjust(w) for v, w in zip(values, columns)) for name, values in rows])


def to_json(result: dict, trace: bool = False) -> str:
    out = {key: value for key, value in result.items() if key not in ("schedules", "toml")}
    if "resume" in out and not trace:  # the resumed run's multiplier of every update: --trace's
        out["resume"] = {key: value for key, value in out["resume"].items() if key != "multipliers"}
    out["schedules"] = []
    for s in result["schedules"]:
        entry = {"label": s["label"], "settings": s["settings"]}
        if s["summary"] is not None:
            entry.update(s["summary"].to_dict())
            if text_encoder.asked(s["settings"]):
                entry["text_encoder"] = text_encoder.summary(s["settings"], result["num_processes"], result["steps_per_epoch"], result["groups"])
            if s.get("exposure"):
                entry["exposure"] = s["exposure"]
            if trace:
                entry["multipliers"] = s["multipliers"]
                if s.get("group_multipliers"):
                    entry["group_multipliers"] = s["group_multipliers"]
        out["schedules"].append(entry)
    return json.dumps(out, indent=2)


def plot(result: dict, path: str, size) -> None:
    from .commands.plot import plot as draw  # matplotlib only when a plot is asked for

    draw(result, path, "x".join(map(str, size)) if isinstance(size, tuple) else size)


def list_schedules() -> int:
    """The schedules that can be used, one a line; third-party ones that fail to load apart,
    with their reason, on stderr."""
    print("\n".join(registry.names()))
    for name, reason in registry.broken().items():
        print(f"not available: {name}: {reason} / 使用不可", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    own = argv[: argv.index("--")] if "--" in argv else argv
    if argv[:1] != ["preview"] or {"-h", "--help"} & set(own):
        _, args = parse(own)  # sdsched list, doctor, --version or --help (which exits)
        if args.command == "doctor":
            from .commands import doctor

            return doctor.main(args)
        return list_schedules()
    flags = preview_only_parser().parse_known_args(own[1:])[0]
    if flags.plot:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            preview_only_parser().error(PLOT_HINT)
    result = compute(argv[1:])
    if flags.to_toml:
        write_toml(flags.to_toml, result)
    try:
        print(to_json(result, flags.trace) if flags.json else render_text(result), flush=True)
    except BrokenPipeError:  # `sdsched preview ... | head`: the reader has what it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 0
    if flags.plot:
        plot(result, flags.plot, flags.plot_size)
        if not flags.json:
            print(f"\nplot: {flags.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
