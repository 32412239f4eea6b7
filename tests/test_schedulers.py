"""Layer 2: the torch scheduler objects, stepped on a real optimizer."""

import math

import pytest
import torch
from diffusers import optimization as stock

from conftest import lr_trace, two_group_optimizer
from sdsched_plugin.schedulers import CosineFloor, CosineWithRestartsFloor, FloorScheduler, LinearFloor, PolynomialFloor
from sdsched_plugin.schedule.cycles import PLAIN as PLAIN_RESTARTS

UNET_LR, TE_LR = 1e-4, 5e-5


def trace_of(make_scheduler, steps, optimizer=None):
    """The per-step LRs of a scheduler made on ``optimizer`` (two param groups by default)."""
    optimizer = optimizer or two_group_optimizer(UNET_LR, TE_LR)
    return lr_trace(make_scheduler(optimizer), optimizer, steps)


def formula(name, step, warmup, total, min_value, num_cycles=1, power=1.0):
    """The floored curves written out from the issue's definition, independent of diffusers."""
    if step < warmup:
        return step / max(1, warmup)
    if step >= total:
        return min_value
    progress = (step - warmup) / (total - warmup)
    f = {
        "linear_floor": 1 - progress,
        "cosine_floor": 0.5 * (1 + math.cos(math.pi * progress)),
        "cosine_with_restarts_floor": 0.5 * (1 + math.cos(math.pi * ((num_cycles * progress) % 1.0))),
        "polynomial_floor": (1 - progress) ** power,
    }[name]
    return min_value + (1 - min_value) * f


CASES = [
    (LinearFloor, {}),
    (CosineFloor, {}),
    (CosineWithRestartsFloor, {"num_cycles": 1}),
    (CosineWithRestartsFloor, {"num_cycles": 3}),
    (PolynomialFloor, {"power": 1.0}),
    (PolynomialFloor, {"power": 2.0}),
]


@pytest.mark.parametrize("cls, extra", CASES)
@pytest.mark.parametrize("min_value", [0.0, 0.5])
@pytest.mark.parametrize("warmup", [0, 6])
def test_lr_trace_matches_formula_in_every_param_group(cls, extra, min_value, warmup):
    total = 60
    trace = trace_of(
        lambda opt: cls(opt, num_training_steps=total, num_warmup_steps=warmup, min_value=min_value, **extra),
        total + 5,
    )
    for step, (unet_lr, te_lr) in enumerate(trace):
        expected = formula(cls.name, step, warmup, total, min_value, **extra)
        assert unet_lr == pytest.approx(UNET_LR * expected, rel=1e-9, abs=1e-18), step
        assert te_lr == pytest.approx(TE_LR * expected, rel=1e-9, abs=1e-18), step
    # key steps pinned: start, warmup end, last step, past it
    assert trace[0][0] == (0.0 if warmup else UNET_LR)
    assert trace[warmup][0] == pytest.approx(UNET_LR)
    assert trace[total][0] == pytest.approx(UNET_LR * min_value)
    assert trace[total + 4][0] == pytest.approx(UNET_LR * min_value)


def test_restart_steps_jump_back_to_peak_and_floor_is_the_minimum():
    total, warmup = 100, 10
    trace = trace_of(
        lambda opt: CosineWithRestartsFloor(opt, num_training_steps=total, num_warmup_steps=warmup, min_value=0.5, num_cycles=3),
        total + 1,
    )
    unet = [lrs[0] for lrs in trace]
    # 90 decaying steps in 3 cycles of 30: restarts at 40 and 70
    for restart in (40, 70):
        assert unet[restart] == pytest.approx(UNET_LR)
        assert unet[restart - 1] < 0.51 * UNET_LR
    assert min(unet[warmup:]) == pytest.approx(0.5 * UNET_LR)
    assert unet[total] == pytest.approx(0.5 * UNET_LR)  # stock drops to 0 here (sd-scripts #141)


STOCK = [
    (LinearFloor, {}, lambda opt, w, t: stock.get_linear_schedule_with_warmup(opt, w, t)),
    (CosineFloor, {}, lambda opt, w, t: stock.get_cosine_schedule_with_warmup(opt, w, t)),
    (
        CosineWithRestartsFloor,
        {"num_cycles": 2},
        lambda opt, w, t: stock.get_cosine_with_hard_restarts_schedule_with_warmup(opt, w, t, num_cycles=2),
    ),
    (
        PolynomialFloor,
        {"power": 2.0},
        lambda opt, w, t: stock.get_polynomial_decay_schedule_with_warmup(opt, w, t, lr_end=0.0, power=2.0),
    ),
]


@pytest.mark.parametrize("cls, extra, make_stock", STOCK)
def test_zero_floor_reproduces_the_stock_schedule_exactly(cls, extra, make_stock):
    total, warmup = 50, 5
    ours = trace_of(lambda opt: cls(opt, num_training_steps=total, num_warmup_steps=warmup, min_value=0.0, **extra), total + 1)
    theirs = trace_of(lambda opt: make_stock(opt, warmup, total), total + 1)
    assert ours == theirs


def test_prodigy_style_lr_one_is_a_plain_multiplier():
    trace = trace_of(
        lambda opt: CosineFloor(opt, num_training_steps=20, min_value=0.4),
        21,
        optimizer=torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=1.0),
    )
    assert trace[0] == [1.0]
    assert trace[10][0] == pytest.approx(0.4 + 0.6 * 0.5)
    assert trace[20] == [pytest.approx(0.4)]


def test_is_a_torch_lr_scheduler_with_a_plain_state():
    optimizer = two_group_optimizer(UNET_LR, TE_LR)
    scheduler = CosineWithRestartsFloor(optimizer, num_training_steps=10, min_value=0.5, num_cycles=2)
    assert isinstance(scheduler, torch.optim.lr_scheduler.LRScheduler)
    state = scheduler.state_dict()
    assert state["lr_lambdas"] == [None, None]
    assert state["sdsched"] == {
        "name": "cosine_with_restarts_floor",
        **PLAIN_RESTARTS,
        "min_value": 0.5,
        "num_warmup_steps": 0,
        "num_training_steps": 10,
        "num_cycles": 2,
    }


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"num_training_steps": 10}, "--lr_scheduler_min_value: missing"),
        ({"min_value": 0.5}, "--max_train_steps: missing"),
        ({"num_training_steps": 10, "min_value": 1.5}, "--lr_scheduler_min_value: got 1.5"),
        ({"num_training_steps": 10, "min_value": 0.5, "num_warmup_steps": 10}, "--lr_warmup_steps: got 10"),
        ({"num_training_steps": 10, "min_value": 0.5, "num_cycles": 0}, "--lr_scheduler_num_cycles: got 0"),
        ({"num_training_steps": 10, "min_value": 0.5, "gamma": 0.5}, "cosine_with_restarts_floor arguments: got 'gamma'"),
    ],
)
def test_bad_constructor_arguments_name_the_option(kwargs, message):
    with pytest.raises(ValueError) as caught:
        CosineWithRestartsFloor(two_group_optimizer(UNET_LR, TE_LR), **kwargs)
    assert message in str(caught.value)


def test_every_builtin_is_a_floor_scheduler_with_its_stock_name():
    for cls in (LinearFloor, CosineFloor, CosineWithRestartsFloor, PolynomialFloor):
        assert issubclass(cls, FloorScheduler)
        assert cls.name == cls.base_name + "_floor"
