"""Stand-in for kohya-ss/sd-scripts' ``library/train_util.py``, for CI (sd-scripts is not on PyPI).

Written from reading the real module (revision 48d368f, 2026-02), not copied from it. It keeps
the interface and the control flow that the plugin meets:

- ``add_optimizer_arguments(parser)``: the scheduler flags with sd-scripts' types and defaults,
  ``--lr_warmup_steps`` read by its nested ``int_or_float`` (int >= 1, float < 1, "N%");
- ``add_training_arguments(parser, support_dreambooth)``: the step/epoch/state/config flags;
- ``read_config_from_file(args, parser)``: TOML sections flattened, then
  ``parser.parse_args(namespace=...)`` re-parses ``sys.argv`` (command line wins, TOML values
  are not type-converted), returns a new Namespace;
- ``get_scheduler_fix(args, optimizer, num_processes)``: schedule-free dummy first; steps
  scaled by ``num_processes``, a float warmup as a ratio; ``--lr_scheduler_args`` as
  ``key=value`` with ``ast.literal_eval``; custom ``--lr_scheduler_type`` (a dotted path is
  imported, a plain name comes from torch) that rejects warmup; ``adafactor``;
  ``piecewise_constant`` from diffusers; everything else by transformers' ``SchedulerType``;
- ``get_sai_model_spec(state_dict, args, sdxl, lora, textual_inversion, ...)``: the ModelSpec
  metadata every save path merges into the model file (a few of its keys here).
"""

import argparse
import ast
import importlib
import os

import toml
import torch
import transformers
from diffusers.optimization import SchedulerType as DiffusersSchedulerType
from diffusers.optimization import TYPE_TO_SCHEDULER_FUNCTION as DIFFUSERS_TYPE_TO_SCHEDULER_FUNCTION
from transformers.optimization import TYPE_TO_SCHEDULER_FUNCTION, SchedulerType

STANDIN = True  # lets tests tell the stand-in from a real checkout


def add_training_arguments(parser: argparse.ArgumentParser, support_dreambooth: bool):
    parser.add_argument("--output_dir", type=str, default=None, help="directory to output / 出力先")
    parser.add_argument("--save_state", action="store_true", help="save training state / 学習状態を保存する")
    parser.add_argument("--resume", type=str, default=None, help="saved state to resume / 再開する状態")
    parser.add_argument("--max_train_steps", type=int, default=1600, help="training steps / 学習ステップ数")
    parser.add_argument("--max_train_epochs", type=int, default=None, help="training epochs / 学習エポック数")
    parser.add_argument("--gradient_accumulation_steps", type=int, default=1, help="steps to accumulate / 勾配累積")
    parser.add_argument("--seed", type=int, default=None, help="random seed / 乱数シード")
    parser.add_argument("--config_file", type=str, default=None, help="config .toml / 設定ファイル")
    parser.add_argument("--output_config", action="store_true", help="write args to config_file / 設定出力")


def add_optimizer_arguments(parser: argparse.ArgumentParser):
    def int_or_float(value):
        if value.endswith("%"):
            try:
                return float(value[:-1]) / 100.0
            except ValueError:
                raise argparse.ArgumentTypeError(f"Value '{value}' is not a valid percentage")
        try:
            float_value = float(value)
            if float_value >= 1:
                return int(value)
            return float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{value}' is not an int or float")

    parser.add_argument("--optimizer_type", type=str, default="", help="optimizer / オプティマイザ")
    parser.add_argument("--learning_rate", type=float, default=2.0e-6, help="learning rate / 学習率")
    parser.add_argument("--optimizer_args", type=str, default=None, nargs="*", help="optimizer args / 追加引数")
    parser.add_argument("--lr_scheduler_type", type=str, default="", help="custom scheduler module / 使用するスケジューラ")
    parser.add_argument("--lr_scheduler_args", type=str, default=None, nargs="*", help="scheduler args / 追加引数")
    parser.add_argument("--lr_scheduler", type=str, default="constant", help="scheduler to use / 学習率のスケジューラ")
    parser.add_argument("--lr_warmup_steps", type=int_or_float, default=0, help="warmup steps or ratio / ウォームアップ")
    parser.add_argument("--lr_decay_steps", type=int_or_float, default=0, help="decay steps or ratio / 減衰")
    parser.add_argument("--lr_scheduler_num_cycles", type=int, default=1, help="restarts / リスタート回数")
    parser.add_argument("--lr_scheduler_power", type=float, default=1, help="polynomial power")
    parser.add_argument("--lr_scheduler_timescale", type=int, default=None, help="inverse sqrt timescale")
    parser.add_argument("--lr_scheduler_min_lr_ratio", type=float, default=None, help="min lr ratio / 最小学習率比")


def read_config_from_file(args: argparse.Namespace, parser: argparse.ArgumentParser):
    if not args.config_file:
        return args
    config_path = args.config_file + ".toml" if not args.config_file.endswith(".toml") else args.config_file
    if not os.path.exists(config_path):
        print(f"{config_path} not found")
        exit(1)
    with open(config_path, "r", encoding="utf-8") as f:
        config_dict = toml.load(f)
    flat = {}
    for section_name, section in config_dict.items():
        if not isinstance(section, dict):
            flat[section_name] = section
            continue
        for key, value in section.items():
            flat[key] = value
    config_args = argparse.Namespace(**flat)
    args = parser.parse_args(namespace=config_args)  # sys.argv again: the command line wins
    args.config_file = os.path.splitext(args.config_file)[0]
    return args


def verify_training_args(args: argparse.Namespace):
    pass


def get_sai_model_spec(state_dict, args, sdxl: bool, lora: bool, textual_inversion: bool, is_stable_diffusion_ckpt=None, **model_types) -> dict:
    title = getattr(args, "metadata_title", None) or getattr(args, "output_name", None) or "untitled"
    return {"modelspec.sai_model_spec": "1.0.1", "modelspec.architecture": "stable-diffusion-v1/lora" if lora else "stable-diffusion-v1",
            "modelspec.implementation": "https://github.com/Stability-AI/generative-models", "modelspec.title": title}  # fmt: skip


def is_schedulefree_optimizer(optimizer, args) -> bool:
    return args.optimizer_type.lower().endswith("schedulefree")


def get_dummy_scheduler(optimizer):
    class DummyScheduler:
        def __init__(self, optimizer):
            self.optimizer = optimizer

        def step(self):
            pass

        def get_last_lr(self):
            return [group["lr"] for group in self.optimizer.param_groups]

    return DummyScheduler(optimizer)


def get_scheduler_fix(args, optimizer, num_processes: int):
    if is_schedulefree_optimizer(optimizer, args):
        return get_dummy_scheduler(optimizer)

    name = args.lr_scheduler
    num_training_steps = args.max_train_steps * num_processes
    num_warmup_steps = (
        int(args.lr_warmup_steps * num_training_steps) if isinstance(args.lr_warmup_steps, float) else args.lr_warmup_steps
    )
    num_decay_steps = (
        int(args.lr_decay_steps * num_training_steps) if isinstance(args.lr_decay_steps, float) else args.lr_decay_steps
    )
    num_stable_steps = num_training_steps - num_warmup_steps - num_decay_steps
    num_cycles = args.lr_scheduler_num_cycles
    power = args.lr_scheduler_power
    timescale = args.lr_scheduler_timescale
    min_lr_ratio = args.lr_scheduler_min_lr_ratio

    lr_scheduler_kwargs = {}
    if args.lr_scheduler_args:
        for arg in args.lr_scheduler_args:
            key, value = arg.split("=")
            lr_scheduler_kwargs[key] = ast.literal_eval(value)

    def wrap_check_needless_num_warmup_steps(return_vals):
        if num_warmup_steps is not None and num_warmup_steps != 0:
            raise ValueError(f"{name} does not require `num_warmup_steps`. Set None or 0.")
        return return_vals

    if args.lr_scheduler_type:
        lr_scheduler_type = args.lr_scheduler_type
        if "." not in lr_scheduler_type:
            module = torch.optim.lr_scheduler
        else:
            parts = lr_scheduler_type.split(".")
            module = importlib.import_module(".".join(parts[:-1]))
            lr_scheduler_type = parts[-1]
        scheduler = getattr(module, lr_scheduler_type)(optimizer, **lr_scheduler_kwargs)
        return wrap_check_needless_num_warmup_steps(scheduler)

    if name.startswith("adafactor"):
        assert type(optimizer) == transformers.optimization.Adafactor, "adafactor scheduler must be used with Adafactor optimizer"
        initial_lr = float(name.split(":")[1])
        return wrap_check_needless_num_warmup_steps(transformers.optimization.AdafactorSchedule(optimizer, initial_lr))

    if name == DiffusersSchedulerType.PIECEWISE_CONSTANT.value:
        schedule_func = DIFFUSERS_TYPE_TO_SCHEDULER_FUNCTION[DiffusersSchedulerType(name)]
        return schedule_func(optimizer, **lr_scheduler_kwargs)

    name = SchedulerType(name)
    schedule_func = TYPE_TO_SCHEDULER_FUNCTION[name]
    if name == SchedulerType.CONSTANT:
        return wrap_check_needless_num_warmup_steps(schedule_func(optimizer, **lr_scheduler_kwargs))
    if num_warmup_steps is None:
        raise ValueError(f"{name} requires `num_warmup_steps`, please provide that argument.")
    if name == SchedulerType.CONSTANT_WITH_WARMUP:
        return schedule_func(optimizer, num_warmup_steps=num_warmup_steps, **lr_scheduler_kwargs)
    if name == SchedulerType.INVERSE_SQRT:
        return schedule_func(optimizer, num_warmup_steps=num_warmup_steps, timescale=timescale, **lr_scheduler_kwargs)
    if num_training_steps is None:
        raise ValueError(f"{name} requires `num_training_steps`, please provide that argument.")
    if name == SchedulerType.COSINE_WITH_RESTARTS:
        return schedule_func(
            optimizer,
            num_warmup_steps=num_warmup_steps,
            num_training_steps=num_training_steps,
            num_cycles=num_cycles,
            **lr_scheduler_kwargs,
        )
    if name == SchedulerType.POLYNOMIAL:
        return schedule_func(
            optimizer, num_warmup_steps=num_warmup_steps, num_training_steps=num_training_steps, power=power, **lr_scheduler_kwargs
        )
    if name == SchedulerType.COSINE_WITH_MIN_LR:
        return schedule_func(
            optimizer,
            num_warmup_steps=num_warmup_steps,
            num_training_steps=num_training_steps,
            num_cycles=num_cycles / 2,
            min_lr_rate=min_lr_ratio,
            **lr_scheduler_kwargs,
        )
    if name == SchedulerType.LINEAR or name == SchedulerType.COSINE:
        return schedule_func(
            optimizer, num_warmup_steps=num_warmup_steps, num_training_steps=num_training_steps, **lr_scheduler_kwargs
        )
    if num_decay_steps is None:
        raise ValueError(f"{name} requires `num_decay_steps`, please provide that argument.")
    if name == SchedulerType.WARMUP_STABLE_DECAY:
        return schedule_func(
            optimizer,
            num_warmup_steps=num_warmup_steps,
            num_stable_steps=num_stable_steps,
            num_decay_steps=num_decay_steps,
            num_cycles=num_cycles / 2,
            min_lr_ratio=min_lr_ratio if min_lr_ratio is not None else 0.0,
            **lr_scheduler_kwargs,
        )
    return schedule_func(
        optimizer,
        num_warmup_steps=num_warmup_steps,
        num_training_steps=num_training_steps,
        num_decay_steps=num_decay_steps,
        **lr_scheduler_kwargs,
    )
