"""Torch scheduler objects for the floored schedules.

One job: build a ``torch.optim.lr_scheduler.LambdaLR`` whose multiplier is the stock
``diffusers.optimization`` curve of the same name, lifted by ``floor.floored_curve``. The
curves are not re-derived here: each class asks diffusers for its stock lambda and wraps it.

A LambdaLR (not a bare function) so that accelerate wraps it like sd-scripts' own schedulers
and sd-scripts' ``lr/d*lr`` logging keeps working; one lambda for all param groups, so U-Net
and text-encoder groups keep their own base LRs. Settings live in ``self.sdsched`` as plain
numbers, so the state saved by ``accelerator.save_state`` loads with ``weights_only=True``.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import torch
from diffusers import optimization as stock_schedules
from torch.optim.lr_scheduler import LambdaLR

from . import cycles, options
from .floor import Curve, floored_curve

logger = logging.getLogger("sdsched_plugin")


def stock_curve(factory, **kwargs) -> Curve:
    """The lambda of a diffusers schedule, built on a throwaway optimizer so that the user's
    optimizer is touched only once, by the floored scheduler itself."""
    scratch = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    return factory(scratch, **kwargs).lr_lambdas[0]


class FloorScheduler(LambdaLR):
    """Base of the floored schedules. A subclass names itself and its stock curve; a third-party
    package can add one through the ``sdsched_plugin.schedules`` entry-point group.

    Constructor: ``(optimizer, **kwargs)`` with ``num_training_steps`` and ``min_value``
    required, ``num_warmup_steps`` (default 0) and the subclass's ``options``; every value is
    read by ``options.OPTIONS`` like the command-line flag it mirrors.
    """

    name: ClassVar[str]
    base_name: ClassVar[str]
    options: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[dict[str, Any]] = {}
    # the diffusers.optimization function of the stock curve, the settings it takes besides the
    # step counts, and keywords fixed for the floor
    stock_function: ClassVar[staticmethod]
    stock_keys: ClassVar[tuple[str, ...]] = ()
    stock_fixed: ClassVar[dict[str, Any]] = {}

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """Every keyword the constructor takes besides ``optimizer`` and ``last_epoch``."""
        return ("min_value", "num_warmup_steps", "num_training_steps", *cls.options)

    @classmethod
    def settings(cls, **kwargs) -> dict[str, Any]:
        """Read and check the keyword arguments; return them complete, as plain values."""
        unknown = sorted(set(kwargs) - set(cls.keys()))
        if unknown:
            known = ", ".join(sorted(cls.keys()))
            raise options.OptionError(
                f"{cls.name} arguments", unknown[0], f"one of: {known}", f"次のいずれかを指定してください: {known}"
            )
        for required in ("min_value", "num_training_steps"):
            if kwargs.get(required) is None:
                raise options.OptionError(
                    options.OPTIONS[required].flag,
                    None,
                    f"{required}=... is required by {cls.name}",
                    f"{cls.name} には {required}=... が必要です",
                )
        merged = {"num_warmup_steps": 0, **cls.defaults, **kwargs}
        settings = {key: options.OPTIONS[key].read(value) for key, value in merged.items()}
        options.check_warmup_fits(settings["num_warmup_steps"], settings["num_training_steps"])
        cls.check(settings)
        return {"name": cls.name, **settings}

    @classmethod
    def check(cls, settings: dict[str, Any]) -> None:
        """Checks across values that a subclass adds (raise options.OptionError)."""

    @classmethod
    def stock(cls, settings: dict[str, Any]) -> Curve:
        """The stock curve of the same name, from diffusers."""
        return stock_curve(
            cls.stock_function,
            num_warmup_steps=settings["num_warmup_steps"],
            num_training_steps=settings["num_training_steps"],
            **{key: settings[key] for key in cls.stock_keys},
            **cls.stock_fixed,
        )

    @classmethod
    def curve(cls, settings: dict[str, Any]) -> Curve:
        """The floored multiplier as a function of the step, for checked ``settings``."""
        return floored_curve(
            cls.stock(settings), settings["min_value"], settings["num_warmup_steps"], settings["num_training_steps"]
        )

    def __init__(self, optimizer, last_epoch: int = -1, **kwargs):
        self.sdsched = self.settings(**kwargs)
        super().__init__(optimizer, self.curve(self.sdsched), last_epoch)

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


class LinearFloor(FloorScheduler):
    name = "linear_floor"
    base_name = "linear"
    stock_function = staticmethod(stock_schedules.get_linear_schedule_with_warmup)


class CosineFloor(FloorScheduler):
    name = "cosine_floor"
    base_name = "cosine"
    stock_function = staticmethod(stock_schedules.get_cosine_schedule_with_warmup)


class CosineWithRestartsFloor(FloorScheduler):
    """Floored cosine with hard restarts, and the restart controls of sd-scripts #73: a peak
    decaying per cycle, cycles growing in length, a ramp at each restart, clamp or rescale.
    With those at their defaults it is exactly diffusers' cosine_with_restarts, floored."""

    name = "cosine_with_restarts_floor"
    base_name = "cosine_with_restarts"
    options = ("num_cycles", *cycles.PLAIN)
    defaults = {"num_cycles": 1, **cycles.PLAIN}
    stock_function = staticmethod(stock_schedules.get_cosine_with_hard_restarts_schedule_with_warmup)
    stock_keys = ("num_cycles",)

    @classmethod
    def plain(cls, settings) -> bool:
        return all(settings[key] == value for key, value in cycles.PLAIN.items())

    @classmethod
    def check(cls, settings):
        if not cls.plain(settings):
            cycles.plan(
                settings["num_training_steps"] - settings["num_warmup_steps"],
                settings["num_cycles"],
                settings["cycle_mul"],
                settings["restart_warmup_steps"],
            )

    @classmethod
    def curve(cls, settings):
        if cls.plain(settings):
            return super().curve(settings)
        return cycles.restart_curve(
            cosine_over,
            settings["min_value"],
            settings["num_warmup_steps"],
            settings["num_training_steps"],
            settings["num_cycles"],
            cycle_decay=settings["cycle_decay"],
            cycle_mul=settings["cycle_mul"],
            restart_warmup=settings["restart_warmup_steps"],
            floor_mode=settings["floor_mode"],
        )


def cosine_over(steps: int) -> Curve:
    """diffusers' stock cosine decaying from 1 over ``steps`` steps: one cycle's curve."""
    return stock_curve(stock_schedules.get_cosine_schedule_with_warmup, num_warmup_steps=0, num_training_steps=steps)


class PolynomialFloor(FloorScheduler):
    name = "polynomial_floor"
    base_name = "polynomial"
    options = ("power",)
    defaults = {"power": 1.0}
    stock_function = staticmethod(stock_schedules.get_polynomial_decay_schedule_with_warmup)
    stock_keys = ("power",)
    # The floor takes the place of lr_end: the stock curve decays to 0 and is then lifted,
    # so the floored curve ends exactly at min_value.
    stock_fixed = {"lr_end": 0.0}
