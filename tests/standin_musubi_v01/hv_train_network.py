"""Stand-in for kohya-ss/musubi-tuner's ``hv_train_network.py`` of v0.1.0 to v0.1.6, for CI: a
script at the top of the checkout, imported (if at all) as the top-level ``hv_train_network``.

Written from reading the real module (tags v0.1.0 and v0.1.6), not copied. What the plugin
meets, all here: ``setup_parser()`` (``setup_parser_common()`` from v0.1.7) adding the scheduler
flags inline with a nested ``int_or_float``, and the three flags ``--dataset_config``, ``--dit``
and ``--output_name`` required; ``read_config_from_file(args, parser)``;
``NetworkTrainer.get_scheduler(self, args, optimizer, num_processes)`` (``get_lr_scheduler`` from
v0.1.7), whose ``get_dummy_scheduler`` lacks ``self`` as in the real one (schedule-free
optimizers fail there, in musubi-tuner itself, before v0.2.15); the ``__main__`` block inline,
with no ``main()``.

Only ``NetworkTrainer.train`` is not the real one: where the real one loads the models and
trains, this one prints the "MODEL LOADING" marker and writes the LRs of each step to
``<output_dir>/lr_trace.json``.
"""

import argparse
import ast
import importlib
import json
import os
import pathlib

import toml
import torch
import transformers
from diffusers.optimization import SchedulerType as DiffusersSchedulerType
from diffusers.optimization import TYPE_TO_SCHEDULER_FUNCTION as DIFFUSERS_TYPE_TO_SCHEDULER_FUNCTION
from transformers.optimization import TYPE_TO_SCHEDULER_FUNCTION, SchedulerType


class NetworkTrainer:
    def __init__(self):
        pass

    def is_schedulefree_optimizer(self, optimizer, args):
        return args.optimizer_type.lower().endswith("schedulefree")

    def get_dummy_scheduler(optimizer):  # no self, as in the real one
        class DummyScheduler:
            def __init__(self, optimizer):
                self.optimizer = optimizer

            def step(self):
                pass

            def get_last_lr(self):
                return [group["lr"] for group in self.optimizer.param_groups]

        return DummyScheduler(optimizer)

    def get_scheduler(self, args, optimizer, num_processes: int):
        if self.is_schedulefree_optimizer(optimizer, args):
            return self.get_dummy_scheduler(optimizer)
        name = args.lr_scheduler
        num_training_steps = args.max_train_steps * num_processes
        warmup = args.lr_warmup_steps
        num_warmup_steps = int(warmup * num_training_steps) if isinstance(warmup, float) else warmup
        kwargs = {}
        for arg in args.lr_scheduler_args or []:
            key, value = arg.split("=")
            kwargs[key] = ast.literal_eval(value)
        if args.lr_scheduler_type:
            module, class_name = torch.optim.lr_scheduler, args.lr_scheduler_type
            if "." in class_name:
                module_name, _, class_name = class_name.rpartition(".")
                module = importlib.import_module(module_name)
            return getattr(module, class_name)(optimizer, **kwargs)
        if name.startswith("adafactor"):
            return transformers.optimization.AdafactorSchedule(optimizer, float(name.split(":")[1]))
        if name == DiffusersSchedulerType.PIECEWISE_CONSTANT.value:
            return DIFFUSERS_TYPE_TO_SCHEDULER_FUNCTION[DiffusersSchedulerType(name)](optimizer, **kwargs)
        name = SchedulerType(name)
        schedule = TYPE_TO_SCHEDULER_FUNCTION[name]
        if name == SchedulerType.CONSTANT:
            return schedule(optimizer, **kwargs)
        if name == SchedulerType.CONSTANT_WITH_WARMUP:
            return schedule(optimizer, num_warmup_steps=num_warmup_steps, **kwargs)
        steps = {"num_warmup_steps": num_warmup_steps, "num_training_steps": num_training_steps}
        if name == SchedulerType.COSINE_WITH_RESTARTS:
            return schedule(optimizer, **steps, num_cycles=args.lr_scheduler_num_cycles, **kwargs)
        if name == SchedulerType.POLYNOMIAL:
            return schedule(optimizer, **steps, power=args.lr_scheduler_power, **kwargs)
        return schedule(optimizer, **steps, **kwargs)

    def train(self, args):
        """Stand-in only (see the module docstring)."""
        print("MODEL LOADING", flush=True)
        unet, text_encoder = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
        params = [{"params": unet.parameters(), "lr": args.learning_rate}, {"params": text_encoder.parameters(), "lr": args.learning_rate / 2}]
        optimizer = torch.optim.AdamW(params)
        lr_scheduler = self.get_scheduler(args, optimizer, 1)
        trace = []
        for _ in range(args.max_train_steps):
            trace.append([group["lr"] for group in optimizer.param_groups])
            optimizer.step()
            lr_scheduler.step()
        with open(os.path.join(args.output_dir, "lr_trace.json"), "w") as handle:
            json.dump({"scheduler": type(lr_scheduler).__name__, "trace": trace}, handle)


def setup_parser() -> argparse.ArgumentParser:
    def int_or_float(value):
        if value.endswith("%"):
            try:
                return float(value[:-1]) / 100.0
            except ValueError:
                raise argparse.ArgumentTypeError(f"Value '{value}' is not a valid percentage")
        try:
            number = float(value)
            return int(value) if number >= 1 and number.is_integer() else number
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{value}' is not an int or float")

    parser = argparse.ArgumentParser()
    parser.add_argument("--config_file", type=str, default=None, help="config .toml / 設定ファイル")
    parser.add_argument("--dataset_config", type=pathlib.Path, default=None, required=True, help="dataset config / データセットの設定")
    parser.add_argument("--max_train_steps", type=int, default=1600, help="training steps / 学習ステップ数")
    parser.add_argument("--max_train_epochs", type=int, default=None, help="training epochs / 学習エポック数")
    parser.add_argument("--seed", type=int, default=None, help="seed / 乱数シード")
    parser.add_argument("--gradient_accumulation_steps", type=int, default=1, help="accumulation / 勾配累積")
    parser.add_argument("--optimizer_type", type=str, default="", help="optimizer / オプティマイザ")
    parser.add_argument("--optimizer_args", type=str, default=None, nargs="*", help="optimizer args")
    parser.add_argument("--learning_rate", type=float, default=2.0e-6, help="learning rate / 学習率")
    parser.add_argument("--lr_scheduler", type=str, default="constant", help="scheduler / 学習率のスケジューラ")
    parser.add_argument("--lr_warmup_steps", type=int_or_float, default=0, help="warmup steps or ratio")
    parser.add_argument("--lr_decay_steps", type=int_or_float, default=0, help="decay steps or ratio")
    parser.add_argument("--lr_scheduler_num_cycles", type=int, default=1, help="restarts / リスタート回数")
    parser.add_argument("--lr_scheduler_power", type=float, default=1, help="polynomial power")
    parser.add_argument("--lr_scheduler_timescale", type=int, default=None, help="inverse sqrt timescale")
    parser.add_argument("--lr_scheduler_min_lr_ratio", type=float, default=None, help="min lr ratio")
    parser.add_argument("--lr_scheduler_type", type=str, default="", help="custom scheduler module / 使用するスケジューラ")
    parser.add_argument("--lr_scheduler_args", type=str, default=None, nargs="*", help="scheduler args")
    parser.add_argument("--dit", type=str, required=True, help="DiT checkpoint path / DiTのチェックポイントのパス")
    parser.add_argument("--output_dir", type=str, default=None, help="output directory / 出力先")
    parser.add_argument("--output_name", type=str, default=None, required=True, help="output name / 出力ファイル名")
    parser.add_argument("--save_state", action="store_true", help="save state / 状態を保存")
    parser.add_argument("--resume", type=str, default=None, help="resume from state / 再開")
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


if __name__ == "__main__":
    parser = setup_parser()

    args = parser.parse_args()
    args = read_config_from_file(args, parser)

    trainer = NetworkTrainer()
    trainer.train(args)
