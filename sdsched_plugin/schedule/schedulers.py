"""Torch scheduler objects for the floored schedules.

One job: build a ``torch.optim.lr_scheduler.LambdaLR`` whose multiplier is the stock
``diffusers.optimization`` curve of the same name, lifted by ``floor.floored_curve``. The
curves are not re-derived here: each class asks diffusers for its stock lambda and wraps it.
What a schedule is (name, options, settings, checks, the shape of the floor) lives in its
torch-free spec (``specs``), which each class here subclasses.

A LambdaLR (not a bare function) so that accelerate wraps it like sd-scripts' own schedulers
and sd-scripts' ``lr/d*lr`` logging keeps working; one lambda for all param groups, so U-Net
and text-encoder groups keep their own base LRs (one per group where the text encoder has a
schedule of its own: ``specs.FloorSpec.group_curves``). Settings live in ``self.sdsched`` as plain
numbers, so the state saved by ``accelerator.save_state`` loads with ``weights_only=True``.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import torch
from diffusers import optimization as stock_schedules
from torch.optim.lr_scheduler import LambdaLR

from . import specs
from .floor import Curve
from .specs import FloorSpec

logger = logging.getLogger("sdsched_plugin")


def stock_curve(factory, **kwargs) -> Curve:
    """The lambda of a diffusers schedule, built on a throwaway optimizer so that the user's
    optimizer is touched only once, by the floored scheduler itself."""
    scratch = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    return factory(scratch, **kwargs).lr_lambdas[0]


class FloorScheduler(FloorSpec, LambdaLR):
    """Base of the floored schedulers: a ``specs.FloorSpec`` (name, options, settings, checks)
    that is also a LambdaLR. A subclass names its diffusers stock function; a third-party
    package can add one through the ``sdsched_plugin.schedules`` entry-point group.

    Constructor: ``(optimizer, **kwargs)`` with the keywords of ``keys()``, read and checked by
    ``settings()``.
    """

    # the diffusers.optimization function of the stock curve (its settings and fixed keywords
    # are the spec's stock_keys and stock_fixed)
    stock_function: ClassVar[staticmethod]

    @classmethod
    def stock(cls, settings: dict[str, Any]) -> Curve:
        """The stock curve of the same name, from diffusers."""
        return stock_curve(cls.stock_function, **cls.stock_arguments(settings))

    @classmethod
    def pure_stock(cls, settings: dict[str, Any]) -> Curve:
        """The spec's pure curve; a class with none (a third-party one) gives its diffusers curve."""
        if cls.pure_function is None:
            return cls.stock(settings)
        return super().pure_stock(settings)

    @classmethod
    def curve(cls, settings: dict[str, Any]) -> Curve:
        """The floored multiplier as a function of the step, for checked ``settings``, from
        diffusers' own lambdas: what training uses."""
        return cls._shape(settings, lambda: cls.stock(settings), cosine_over)

    def __init__(self, optimizer, last_epoch: int = -1, **kwargs):
        self.sdsched = self.settings(**kwargs)
        # one curve for every group, or (the text encoder on its own schedule) one per group
        curve = self.curve(self.sdsched)
        group_curves = self.group_curves(self.sdsched, len(optimizer.param_groups), curve, self.curve)
        super().__init__(optimizer, group_curves or curve, last_epoch)

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Resume at the saved step with *this* run's settings: the command line of the resumed
        run wins over the saved state, and one warning lists what differs. The LR of the
        restored step is recomputed with this run's schedule (accelerate loads the optimizer,
        which holds the saved LR, before the scheduler); with unchanged settings that is the
        very value the saved run would have used."""
        state = dict(state_dict)
        if "last_epoch" not in state:
            raise ValueError(
                f"{self.name}: the saved scheduler state has no step count (keys: {sorted(state)}); resume from a state "
                f"saved by sd-scripts with --save_state / 保存された状態にステップ数がありません"
            )
        saved_settings = state.pop("sdsched", None)
        saved_base_lrs = state.pop("base_lrs", None)
        state.pop("lr_lambdas", None)  # ours are rebuilt from the settings, never loaded
        if saved_base_lrs is not None and len(saved_base_lrs) != len(self.base_lrs):
            raise ValueError(
                f"{self.name}: the saved state has {len(saved_base_lrs)} param groups, this run has {len(self.base_lrs)}; "
                f"resume with the same network and optimizer settings / 保存時とパラメータグループの数が違います"
                f"({len(saved_base_lrs)} → {len(self.base_lrs)})。同じネットワーク・オプティマイザー設定で再開してください"
            )
        changes = describe_changes(saved_settings, self.sdsched, saved_base_lrs, self.base_lrs)
        self.__dict__.update(state)
        if changes:
            logger.warning(
                f"sdsched-plugin: resuming at step {self.last_epoch} with this run's settings, which differ from the "
                f"saved state: {'; '.join(changes)} / 保存時と異なる設定で再開します(今回の設定を使います)"
            )
        self._last_lr = [base_lr * curve(self.last_epoch) for curve, base_lr in zip(self.lr_lambdas, self.base_lrs)]
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr


def describe_changes(saved: dict | None, current: dict, saved_base_lrs, base_lrs) -> list[str]:
    """What a resumed run changes against its saved state, one entry per value."""
    if saved is None:
        return ["the state has no sdsched-plugin settings (saved by a stock scheduler?); the floored schedule takes over"]
    changes = [
        f"{key}: {saved.get(key)} (saved) -> {current.get(key)} (now)"
        for key in sorted(set(saved) | set(current))
        if saved.get(key) != current.get(key)
    ]
    if saved_base_lrs is not None and list(saved_base_lrs) != list(base_lrs):
        changes.append(f"base LRs: {list(saved_base_lrs)} (saved) -> {list(base_lrs)} (now)")
    return changes


class LinearFloor(specs.LinearFloorSpec, FloorScheduler):
    stock_function = staticmethod(stock_schedules.get_linear_schedule_with_warmup)


class CosineFloor(specs.CosineFloorSpec, FloorScheduler):
    stock_function = staticmethod(stock_schedules.get_cosine_schedule_with_warmup)


class CosineWithRestartsFloor(specs.CosineWithRestartsFloorSpec, FloorScheduler):
    """Floored cosine with hard restarts and the restart controls (see the spec)."""

    stock_function = staticmethod(stock_schedules.get_cosine_with_hard_restarts_schedule_with_warmup)


def cosine_over(steps: int) -> Curve:
    """diffusers' stock cosine decaying from 1 over ``steps`` steps: one cycle's curve."""
    return stock_curve(stock_schedules.get_cosine_schedule_with_warmup, num_warmup_steps=0, num_training_steps=steps)


class PolynomialFloor(specs.PolynomialFloorSpec, FloorScheduler):
    # lr_end=0.0 from the spec; the scratch optimizer of stock_curve has lr 1.0
    stock_function = staticmethod(stock_schedules.get_polynomial_decay_schedule_with_warmup)


class RexFloor(specs.RexFloorSpec, FloorScheduler):
    """Floored REX with the restart controls. diffusers has no REX: the curve is the spec's pure
    one (``specs.RexFloorSpec._shape``), the same function in training and in the preview."""

    @classmethod
    def stock(cls, settings: dict[str, Any]) -> Curve:
        raise NotImplementedError("rex_floor has no diffusers stock curve: its shape is the spec's REX decay")


class Rex(specs.RexSpec, RexFloor):
    """Plain REX (floor 0 unless --lr_scheduler_min_value is given), with the restart controls."""
