"""What each floored schedule is, without torch: its name, options, settings and curve.

One job: the torch-free half of the floored schedules, so that ``sdsched preview`` can check
settings and compute a floored curve without importing torch or diffusers. A spec's
``pure_curve`` is built from the pure stock curves of ``curves`` (bit for bit diffusers'
lambdas) lifted by ``floor.floored_curve`` or ``cycles.restart_curve``. The torch classes in
``schedulers`` subclass these specs and keep everything torch needs (the LambdaLR, resume); they
build their curve from diffusers' own lambdas through the same ``_shape``, so the two can only
differ in the stock curve, which tests/test_curves.py holds equal.

Standard library only; imports nothing from torch, diffusers or ``schedulers``.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

from . import curves, cycles, options, text_encoder
from .floor import Curve, floored_curve


class FloorSpec:
    """Base of the floored schedules. A subclass names itself, its options and its stock curve.

    Settings: ``num_training_steps`` and ``min_value`` required, ``num_warmup_steps`` (default
    0) and the subclass's ``options``; every value is read by ``options.OPTIONS`` like the
    command-line flag it mirrors.
    """

    name: ClassVar[str]
    base_name: ClassVar[str]
    options: ClassVar[tuple[str, ...]] = ()
    defaults: ClassVar[dict[str, Any]] = {}
    # the pure stock curve (a function of curves), the settings it takes besides the step
    # counts, and keywords fixed for the floor; None in a third-party torch class
    pure_function: ClassVar[Callable[..., Curve] | None] = None
    stock_keys: ClassVar[tuple[str, ...]] = ()
    stock_fixed: ClassVar[dict[str, Any]] = {}

    @classmethod
    def keys(cls) -> tuple[str, ...]:
        """Every setting the schedule takes (the torch class's constructor keywords besides
        ``optimizer`` and ``last_epoch``)."""
        return ("min_value", "num_warmup_steps", "num_training_steps", *cls.options, *text_encoder.KEYS)

    @classmethod
    def settings(cls, **kwargs) -> dict[str, Any]:
        """Read and check the keyword arguments; return them complete, as plain values, with the
        schedule's ``name``. Raises options.OptionError."""
        unknown = sorted(set(kwargs) - set(cls.keys()))
        if unknown:
            known = ", ".join(sorted(cls.keys()))
            raise options.OptionError(
                f"{cls.name} arguments", unknown[0], f"one of: {known}", f"次のいずれかを指定してください: {known}"
            )
        for required in ("min_value", "num_training_steps"):
            if kwargs.get(required, cls.defaults.get(required)) is None:
                raise options.OptionError(
                    options.OPTIONS[required].flag,
                    None,
                    f"{required}=... is required by {cls.name}",
                    f"{cls.name} には {required}=... が必要です",
                )
        merged = {"num_warmup_steps": 0, **cls.defaults, **kwargs}
        # an optional setting left out (cycle_epochs) is no key at all: the settings of a run without it, and the states
        # saved with them, stay what they were
        settings = {key: options.OPTIONS[key].read(value) for key, value in merged.items() if value is not None}
        options.check_warmup_fits(settings["num_warmup_steps"], settings["num_training_steps"])
        text_encoder.check(settings)
        cls.check(settings)
        return {"name": cls.name, **settings}

    @classmethod
    def check(cls, settings: dict[str, Any]) -> None:
        """Checks across values that a subclass adds (raise options.OptionError)."""

    @classmethod
    def stock_arguments(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """The keywords of the stock curve for checked ``settings``."""
        return {
            "num_warmup_steps": settings["num_warmup_steps"],
            "num_training_steps": settings["num_training_steps"],
            **{key: settings[key] for key in cls.stock_keys},
            **cls.stock_fixed,
        }

    @classmethod
    def pure_stock(cls, settings: dict[str, Any]) -> Curve:
        """The stock curve of the same name, in pure Python."""
        if cls.pure_function is None:
            raise NotImplementedError(f"{cls.__name__} has no pure stock curve")
        return cls.pure_function(**cls.stock_arguments(settings))

    @classmethod
    def plain_stock(cls, settings: dict[str, Any]) -> bool:
        """Whether the schedule is its stock curve floored (so that the stock curve is what
        sd-scripts alone would run with the same flags)."""
        return True

    @classmethod
    def _shape(cls, settings: dict[str, Any], stock: Callable[[], Curve], cosine_over: Callable[[int], Curve]) -> Curve:
        """The floored curve from a stock curve (``stock()`` builds it, only if needed) and, for the
        restart controls, the one-cycle cosine ``cosine_over(steps)``."""
        return floored_curve(stock(), settings["min_value"], settings["num_warmup_steps"], settings["num_training_steps"])

    @classmethod
    def pure_curve(cls, settings: dict[str, Any]) -> Curve:
        """The floored multiplier as a function of the step, for checked ``settings``, without
        torch: the same floats as the torch class's ``curve``."""
        return cls._shape(settings, lambda: cls.pure_stock(settings), curves.cosine_over)


    @classmethod
    def group_curves(
        cls, settings: dict[str, Any], groups: int, curve: Curve, curve_of: Callable[[dict], Curve] | None = None
    ) -> list[Curve] | None:
        """Each of ``groups`` param groups' curve where the text encoder has a schedule of its own
        (``text_encoder``), else None (one curve for all). ``curve``: the run's curve, already built;
        ``curve_of``: what builds one of other settings (the torch class's ``curve``; the pure one by default)."""
        if not text_encoder.asked(settings):
            return None
        return text_encoder.group_curves(settings, curve, curve_of or cls.pure_curve, groups)


class LinearFloorSpec(FloorSpec):
    name = "linear_floor"
    base_name = "linear"
    pure_function = staticmethod(curves.linear)


class CosineFloorSpec(FloorSpec):
    name = "cosine_floor"
    base_name = "cosine"
    pure_function = staticmethod(curves.cosine)


class RestartSpec(FloorSpec):
    """What the schedules with restarts share: ``num_cycles``, the restart controls of sd-scripts
    #73 (a peak decaying per cycle, cycles growing in length, a ramp at each restart, clamp or
    rescale) and ``cycle_epochs`` (sd-scripts #73 too: each restart on an epoch's first step,
    the epoch's length in scheduler steps given as ``epoch_steps`` by the host or the
    preview). Each cycle is ``one_cycle(settings)(length)``, decaying from 1 over its length."""

    options = ("num_cycles", *cycles.PLAIN, "cycle_epochs", "epoch_steps")
    defaults = {"num_cycles": 1, **cycles.PLAIN, "cycle_epochs": None, "epoch_steps": None}

    @classmethod
    def plain(cls, settings) -> bool:
        return settings.get("cycle_epochs") is None and all(settings[key] == value for key, value in cycles.PLAIN.items())

    @classmethod
    def plain_stock(cls, settings) -> bool:
        return cls.plain(settings)

    @classmethod
    def cycles_plan(cls, settings) -> tuple | None:
        """The cycles of ``cycle_epochs`` (None without it): restarts on epoch boundaries."""
        if settings.get("cycle_epochs") is None:
            return None
        if not settings.get("epoch_steps"):
            raise options.OptionError(
                "--lr_scheduler_cycle_epochs", settings["cycle_epochs"],
                "a run whose epoch length is known: --max_train_epochs or a dataset (the preview: a dataset or --steps_per_epoch)",
                "エポックの長さがわかる実行(--max_train_epochs かデータセット。プレビューではデータセットか --steps_per_epoch)",
            )  # fmt: skip
        return cycles.epoch_plan(
            settings["num_warmup_steps"], settings["num_training_steps"], settings["epoch_steps"], settings["cycle_epochs"],
            settings["num_cycles"], settings["cycle_mul"], settings["restart_warmup_steps"],
        )  # fmt: skip

    @classmethod
    def check(cls, settings):
        decay = settings["num_training_steps"] - settings["num_warmup_steps"]
        by_epochs = cls.cycles_plan(settings)
        if by_epochs is None:
            cycles.check_cycles_fit(decay, settings["num_cycles"])
            cycles.plan(decay, settings["num_cycles"], settings["cycle_mul"], settings["restart_warmup_steps"])
        else:
            settings["num_cycles"] = len(by_epochs[1])  # the count the epochs give, as the settings say it

    @classmethod
    def one_cycle(cls, settings, cosine_over) -> Callable[[int], Curve]:
        return cosine_over

    @classmethod
    def restart_shape(cls, settings, cosine_over) -> Curve:
        return cycles.restart_curve(
            cls.one_cycle(settings, cosine_over),
            settings["min_value"],
            settings["num_warmup_steps"],
            settings["num_training_steps"],
            settings["num_cycles"],
            cycle_decay=settings["cycle_decay"],
            cycle_mul=settings["cycle_mul"],
            restart_warmup=settings["restart_warmup_steps"],
            floor_mode=settings["floor_mode"],
            cycles_plan=cls.cycles_plan(settings),
        )


class CosineWithRestartsFloorSpec(RestartSpec):
    """Floored cosine with hard restarts and the restart controls. With those at their defaults
    it is exactly diffusers' cosine_with_restarts, floored."""

    name = "cosine_with_restarts_floor"
    base_name = "cosine_with_restarts"
    pure_function = staticmethod(curves.cosine_with_hard_restarts)
    stock_keys = ("num_cycles",)

    @classmethod
    def _shape(cls, settings, stock, cosine_over):
        if cls.plain(settings):
            return super()._shape(settings, stock, cosine_over)
        return cls.restart_shape(settings, cosine_over)


class PolynomialFloorSpec(FloorSpec):
    name = "polynomial_floor"
    base_name = "polynomial"
    options = ("power",)
    defaults = {"power": 1.0}
    stock_keys = ("power",)
    # The floor takes the place of lr_end: the stock curve decays to 0 and is then lifted, so
    # the floored curve ends exactly at min_value. The torch class builds diffusers' curve on a
    # scratch optimizer with lr 1.0, so lr_init is 1.0 here too (the multiplier of diffusers'
    # polynomial depends on the optimizer's LR; with lr_end=0 only in the last bits).
    stock_fixed = {"lr_end": 0.0}

    @staticmethod
    def pure_function(**kwargs) -> Curve:
        return curves.polynomial(**kwargs, lr_init=1.0)


class RexFloorSpec(RestartSpec):
    """REX (Chen et al., MLSys 2022; musubi-tuner's ``rex``) with the floor: after sd-scripts'
    linear warmup, ``min + (1 - min) * z / (rex_alpha + rex_beta * z)`` over the decay, ``z`` the
    share still to come; and the restart controls of cosine_with_restarts_floor (num_cycles,
    cycle decay, cycle mul, restart warmup, floor mode), each cycle a REX decay of its own. No
    library has a REX lambda to hold it to: the torch class uses this very curve."""

    name = "rex_floor"
    base_name = "rex"
    options = (*RestartSpec.options, "rex_alpha", "rex_beta")
    defaults = {**RestartSpec.defaults, "rex_alpha": 0.1, "rex_beta": 0.9}

    @classmethod
    def one_cycle(cls, settings, cosine_over):
        alpha, beta = settings["rex_alpha"], settings["rex_beta"]
        return lambda steps: curves.rex_over(steps, alpha, beta)

    @classmethod
    def _shape(cls, settings, stock, cosine_over):
        return cls.restart_shape(settings, cosine_over)


class RexSpec(RexFloorSpec):
    """Plain REX for sd-scripts, where the name is free (sd-scripts #1042 was closed): rex_floor
    with no floor unless one is given (floor 0: ``z / (alpha + beta z)`` decays to 0). musubi-tuner's
    own ``rex`` (absolute min/max LRs, its own warmup) stays musubi-tuner's: its host delegates it."""

    name = "rex"
    defaults = {**RexFloorSpec.defaults, "min_value": 0.0}


SPECS: dict[str, type[FloorSpec]] = {
    spec.__name__[: -len("Spec")]: spec
    for spec in (LinearFloorSpec, CosineFloorSpec, CosineWithRestartsFloorSpec, PolynomialFloorSpec, RexFloorSpec, RexSpec)
}


BY_NAME: dict[str, type[FloorSpec]] = {spec.name: spec for spec in SPECS.values()}


def by_name(name: str) -> type[FloorSpec] | None:
    """The spec of one of the package's own schedule names (``"cosine_floor"``), or None."""
    return BY_NAME.get(name)


def by_class_name(class_name: str) -> type[FloorSpec] | None:
    """The spec of one of the package's own scheduler classes (``"CosineFloor"``), or None: what
    ``--lr_scheduler_type=sdsched_plugin.CosineFloor`` names, without importing torch."""
    return SPECS.get(class_name)
