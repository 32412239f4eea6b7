"""Stand-in for kohya-ss/musubi-tuner's ``musubi_tuner/training/parser_common.py``, for CI.

Written from reading the real module (revision 30c658c, 2026-06), not copied. It keeps what
the plugin meets: ``setup_parser_common()`` calling ``_add_lr_scheduler_args(parser)`` through
the module's globals, musubi's ``_int_or_float`` warmup type (which, unlike sd-scripts', reads
"1.0" as 1), and ``read_config_from_file`` (TOML flattened, then ``parser.parse_args`` on
``sys.argv`` with the TOML as namespace), which training scripts import by name.
"""

import argparse
import os

import toml


def _int_or_float(value):
    if value.endswith("%"):
        try:
            return float(value[:-1]) / 100.0
        except ValueError:
            raise argparse.ArgumentTypeError(f"Value '{value}' is not a valid percentage")
    try:
        float_value = float(value)
        if float_value >= 1 and float_value.is_integer():
            return int(float_value)
        return float_value
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{value}' is not an int or float")


def _add_general_args(parser):
    parser.add_argument("--config_file", type=str, default=None, help="config .toml / 設定ファイル")


def _add_training_args(parser):
    parser.add_argument("--max_train_steps", type=int, default=1600, help="training steps / 学習ステップ数")
    parser.add_argument("--max_train_epochs", type=int, default=None, help="training epochs / 学習エポック数")
    parser.add_argument("--gradient_accumulation_steps", type=int, default=1, help="accumulation / 勾配累積")
    parser.add_argument("--seed", type=int, default=None, help="seed / 乱数シード")


def _add_optimizer_args(parser):
    parser.add_argument("--optimizer_type", type=str, default="", help="optimizer / オプティマイザ")
    parser.add_argument("--optimizer_args", type=str, default=None, nargs="*", help="optimizer args")
    parser.add_argument("--learning_rate", type=float, default=2.0e-6, help="learning rate / 学習率")


def _add_lr_scheduler_args(parser):
    parser.add_argument("--lr_scheduler", type=str, default="constant", help="scheduler / 学習率のスケジューラ")
    parser.add_argument("--lr_warmup_steps", type=_int_or_float, default=0, help="warmup steps or ratio")
    parser.add_argument("--lr_decay_steps", type=_int_or_float, default=0, help="decay steps or ratio")
    parser.add_argument("--lr_scheduler_num_cycles", type=int, default=1, help="restarts / リスタート回数")
    parser.add_argument("--lr_scheduler_power", type=float, default=1, help="polynomial power")
    parser.add_argument("--lr_scheduler_timescale", type=int, default=None, help="inverse sqrt timescale")
    parser.add_argument("--lr_scheduler_min_lr_ratio", type=float, default=None, help="min lr ratio")
    parser.add_argument("--lr_scheduler_type", type=str, default="", help="custom scheduler module / 使用するスケジューラ")
    parser.add_argument("--lr_scheduler_args", type=str, default=None, nargs="*", help="scheduler args")


def _add_save_load_args(parser):
    parser.add_argument("--output_dir", type=str, default=None, help="output directory / 出力先")
    parser.add_argument("--save_state", action="store_true", help="save state / 状態を保存")
    parser.add_argument("--resume", type=str, default=None, help="resume from state / 再開")


def setup_parser_common() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    _add_general_args(parser)
    _add_training_args(parser)
    _add_optimizer_args(parser)
    _add_lr_scheduler_args(parser)
    _add_save_load_args(parser)
    return parser


def read_config_from_file(args: argparse.Namespace, parser: argparse.ArgumentParser):
    if not args.config_file:
        return args
    config_path = args.config_file + ".toml" if not args.config_file.endswith(".toml") else args.config_file
    if not os.path.exists(config_path):
        exit(1)
    with open(config_path, "r", encoding="utf-8") as f:
        config_dict = toml.load(f)
    flat = {}
    for section_name, section in config_dict.items():
        if not isinstance(section, dict):
            flat[section_name] = section
            continue
        flat.update(section)
    args = parser.parse_args(namespace=argparse.Namespace(**flat))
    args.config_file = os.path.splitext(args.config_file)[0]
    return args
