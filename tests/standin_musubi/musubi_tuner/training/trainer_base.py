"""Stand-in for kohya-ss/musubi-tuner's ``musubi_tuner/training/trainer_base.py``, for CI.

Written from reading the real module (revision 30c658c, 2026-06), not copied. ``NetworkTrainer``
keeps ``get_lr_scheduler(self, args, optimizer, num_processes)`` and its control flow:
schedule-free dummy first; steps scaled by ``num_processes`` with a float warmup as a ratio;
``--lr_scheduler_args`` via ``ast.literal_eval``; a custom ``--lr_scheduler_type`` (no warmup
check, unlike sd-scripts); adafactor; its own ``rex`` (``RexLR``, absolute LRs from
``--learning_rate`` and ``--lr_scheduler_min_lr_ratio``, default 0.01); piecewise_constant; then
transformers' ``SchedulerType``.
"""

import ast
import importlib

import torch
import transformers
from diffusers.optimization import SchedulerType as DiffusersSchedulerType
from diffusers.optimization import TYPE_TO_SCHEDULER_FUNCTION as DIFFUSERS_TYPE_TO_SCHEDULER_FUNCTION
from transformers.optimization import TYPE_TO_SCHEDULER_FUNCTION, SchedulerType

from musubi_tuner.modules.lr_schedulers import RexLR

STANDIN = True


class NetworkTrainer:
    def __init__(self):
        self.blocks_to_swap = None

    def is_schedulefree_optimizer(self, optimizer, args) -> bool:
        return args.optimizer_type.lower().endswith("schedulefree")

    def get_dummy_scheduler(self, optimizer):
        class DummyScheduler:
            def __init__(self, optimizer):
                self.optimizer = optimizer

            def step(self):
                pass

            def get_last_lr(self):
                return [group["lr"] for group in self.optimizer.param_groups]

        return DummyScheduler(optimizer)

    def get_lr_scheduler(self, args, optimizer, num_processes: int):
        if self.is_schedulefree_optimizer(optimizer, args):
            return self.get_dummy_scheduler(optimizer)

        name = args.lr_scheduler
        num_training_steps = args.max_train_steps * num_processes
        num_warmup_steps = (
            int(args.lr_warmup_steps * num_training_steps) if isinstance(args.lr_warmup_steps, float) else args.lr_warmup_steps
        )
        num_cycles = args.lr_scheduler_num_cycles
        power = args.lr_scheduler_power

        kwargs = {}
        for arg in args.lr_scheduler_args or []:
            key, value = arg.split("=")
            kwargs[key] = ast.literal_eval(value)

        if args.lr_scheduler_type:
            scheduler_type = args.lr_scheduler_type
            if "." not in scheduler_type:
                module = torch.optim.lr_scheduler
            else:
                parts = scheduler_type.split(".")
                module = importlib.import_module(".".join(parts[:-1]))
                scheduler_type = parts[-1]
            return getattr(module, scheduler_type)(optimizer, **kwargs)

        if name.startswith("adafactor"):
            return transformers.optimization.AdafactorSchedule(optimizer, float(name.split(":")[1]))

        if name.lower() == "rex":
            ratio = args.lr_scheduler_min_lr_ratio
            return RexLR(optimizer, max_lr=args.learning_rate, min_lr=args.learning_rate * (ratio if ratio is not None else 0.01),
                         num_steps=num_training_steps, num_warmup_steps=num_warmup_steps, **kwargs)  # fmt: skip

        if name == DiffusersSchedulerType.PIECEWISE_CONSTANT.value:
            return DIFFUSERS_TYPE_TO_SCHEDULER_FUNCTION[DiffusersSchedulerType(name)](optimizer, **kwargs)

        name = SchedulerType(name)
        schedule_func = TYPE_TO_SCHEDULER_FUNCTION[name]
        if name == SchedulerType.CONSTANT:
            return schedule_func(optimizer, **kwargs)
        if name == SchedulerType.CONSTANT_WITH_WARMUP:
            return schedule_func(optimizer, num_warmup_steps=num_warmup_steps, **kwargs)
        if name == SchedulerType.COSINE_WITH_RESTARTS:
            return schedule_func(
                optimizer, num_warmup_steps=num_warmup_steps, num_training_steps=num_training_steps, num_cycles=num_cycles, **kwargs
            )
        if name == SchedulerType.POLYNOMIAL:
            return schedule_func(
                optimizer, num_warmup_steps=num_warmup_steps, num_training_steps=num_training_steps, power=power, **kwargs
            )
        return schedule_func(optimizer, num_warmup_steps=num_warmup_steps, num_training_steps=num_training_steps, **kwargs)
