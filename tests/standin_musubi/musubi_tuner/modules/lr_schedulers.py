"""Stand-in for musubi-tuner's ``musubi_tuner/modules/lr_schedulers.py`` (v0.2.11 and later), for CI.

Written from reading the real ``RexLR`` (revision 30c658c), not copied: absolute ``max_lr`` /
``min_lr``, a warmup in absolute LRs from step 1 (a single warmup step is ``min_lr``), then each
group's base LR times ``min/max + (1 - min/max) * z / (rex_alpha + rex_beta * z)`` with
``z = (remaining - (after % remaining)) / remaining``; ``min_lr`` past the end and where
``after == -1``.
"""

import torch


class RexLR(torch.optim.lr_scheduler.LRScheduler):
    def __init__(self, optimizer, max_lr, min_lr=0.0, num_steps=0, num_warmup_steps=0, rex_alpha=0.1, rex_beta=0.9, last_epoch=-1):
        if min_lr > max_lr:
            raise ValueError("min_lr must not exceed max_lr")
        if num_warmup_steps > num_steps:
            raise ValueError("num_warmup_steps must not exceed num_steps")
        self.min_lr, self.max_lr = min_lr, max_lr
        self.num_steps, self.num_warmup_steps = num_steps, num_warmup_steps
        self.rex_alpha, self.rex_beta = rex_alpha, rex_beta
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        super().__init__(optimizer, last_epoch)

    def get_lr(self):
        step, warmup = self.last_epoch, self.num_warmup_steps
        if warmup == 1 and step == 1:
            return [self.min_lr for _ in self.base_lrs]
        if warmup > 1 and 1 <= step <= warmup - 1:
            return [self.min_lr + (self.max_lr - self.min_lr) * (step - 1) / (warmup - 1) for _ in self.base_lrs]
        after, remaining = step - warmup, self.num_steps - warmup
        if after >= remaining or after == -1 or remaining <= 0:
            return [self.min_lr for _ in self.base_lrs]
        z = (remaining - (after % remaining)) / remaining
        factor = self.min_lr / self.max_lr + (1.0 - self.min_lr / self.max_lr) * (z / (self.rex_alpha + self.rex_beta * z))
        return [base_lr * factor for base_lr in self.base_lrs]
