"""Restart controls of cosine_with_restarts_floor: pinned multipliers and properties."""

import logging
import math

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sdsched_plugin.schedule import cycles, options
from sdsched_plugin.schedulers import CosineWithRestartsFloor


def curve(**kwargs):
    return CosineWithRestartsFloor.curve(CosineWithRestartsFloor.settings(**kwargs))


def cos_part(local, length):
    return 0.5 * (1 + math.cos(math.pi * local / length))


def test_growing_cycles_fill_the_run_with_the_rounding_in_the_last():
    assert cycles.cycle_lengths(100, 3, 1.5) == [21, 32, 47]  # 21.05, 31.58, rest
    assert cycles.cycle_lengths(10, 3, 1.0) == [3, 3, 4]
    assert cycles.cycle_lengths(7, 7, 2.0) == [1, 1, 1, 1, 1, 1, 1]


def test_cycle_mul_pinned_at_the_boundaries():
    c = curve(num_training_steps=110, num_warmup_steps=10, min_value=0.4, num_cycles=3, cycle_mul=1.5)
    starts, lengths = [10, 31, 63], [21, 32, 47]
    assert c(0) == 0.0 and c(5) == 0.5
    for start, length in zip(starts, lengths):
        assert c(start) == pytest.approx(1.0)
        last = start + length - 1
        assert c(last) == pytest.approx(0.4 + 0.6 * cos_part(length - 1, length), rel=1e-12)
    assert c(30) < c(31)  # restart right after the last step of cycle 1
    assert c(110) == c(200) == 0.4


def test_cycle_decay_hits_the_floor_and_stays_flat():
    c = curve(num_training_steps=90, min_value=0.3, num_cycles=3, cycle_decay=0.5)
    assert [c(0), c(30), c(60)] == pytest.approx([1.0, 0.5, 0.3])  # peaks 1, 0.5, max(0.3, 0.25)
    assert c(45) == pytest.approx(0.3 + 0.2 * cos_part(15, 30))
    assert {c(step) for step in range(60, 95)} == {0.3}


@pytest.mark.parametrize("restart_warmup, ramp", [(5, 5), (0.2, 6)])  # steps, or a ratio of the 30-step cycle
def test_restart_warmup_ramps_from_floor_to_peak(restart_warmup, ramp):
    c = curve(num_training_steps=100, num_warmup_steps=10, min_value=0.2, num_cycles=3, restart_warmup_steps=restart_warmup)
    assert c(10) == pytest.approx(1.0)  # the first cycle keeps --lr_warmup_steps only
    for start in (40, 70):
        assert c(start) == pytest.approx(0.2)
        assert c(start + ramp // 2) == pytest.approx(0.2 + 0.8 * (ramp // 2) / ramp)
        assert c(start + ramp) == pytest.approx(1.0)
        assert c(start + ramp + 3) == pytest.approx(0.2 + 0.8 * cos_part(3, 30 - ramp))


def test_clamp_cuts_the_stock_curve_at_the_floor():
    c = curve(num_training_steps=100, min_value=0.3, num_cycles=2, cycle_decay=0.8, floor_mode="clamp")
    for step in range(100):
        k, local = divmod(step, 50)
        assert c(step) == pytest.approx(max(0.3, 0.8**k * cos_part(local, 50)), rel=1e-12)


def test_defaults_reproduce_the_core_schedule_exactly():
    core = curve(num_training_steps=97, num_warmup_steps=7, min_value=0.35, num_cycles=4)
    explicit = curve(num_training_steps=97, num_warmup_steps=7, min_value=0.35, num_cycles=4, **cycles.PLAIN)
    assert [core(s) for s in range(100)] == [explicit(s) for s in range(100)]


@pytest.mark.parametrize(
    "kwargs, flag",
    [
        ({"cycle_decay": 0}, "--lr_scheduler_cycle_decay"),
        ({"cycle_decay": 1.5}, "--lr_scheduler_cycle_decay"),
        ({"cycle_mul": 0.5}, "--lr_scheduler_cycle_mul"),
        ({"floor_mode": "cut"}, "--lr_scheduler_floor_mode"),
        ({"restart_warmup_steps": 1.5}, "--lr_scheduler_restart_warmup_steps"),
        ({"restart_warmup_steps": 30, "num_cycles": 3}, "--lr_scheduler_restart_warmup_steps"),
        ({"num_cycles": 91, "cycle_mul": 2.0}, "--lr_scheduler_num_cycles"),
    ],
)
def test_bad_restart_settings_name_their_flag(kwargs, flag):
    with pytest.raises(options.OptionError) as caught:
        CosineWithRestartsFloor.settings(**{"num_training_steps": 90, "min_value": 0.3, **kwargs})
    assert caught.value.flag == flag and " / " in str(caught.value)


restart_settings = st.fixed_dictionaries(
    {
        "num_training_steps": st.integers(20, 400),
        "warmup_share": st.floats(0, 0.3),
        "min_value": st.floats(0, 0.95),
        "num_cycles": st.integers(1, 6),
        "cycle_decay": st.floats(0.05, 1.0),
        "cycle_mul": st.floats(1.0, 3.0),
        "restart_warmup_steps": st.one_of(st.integers(0, 10), st.floats(0, 0.9)),
        "floor_mode": st.sampled_from(["rescale", "clamp"]),
    }
)


@settings(max_examples=300, deadline=None)
@given(restart_settings)
def test_properties_over_random_settings(drawn):
    total = drawn.pop("num_training_steps")
    warmup = int(drawn.pop("warmup_share") * total)
    try:
        kwargs = CosineWithRestartsFloor.settings(num_training_steps=total, num_warmup_steps=warmup, **drawn)
    except options.OptionError:
        assume(False)
    c = CosineWithRestartsFloor.curve(kwargs)
    floor = kwargs["min_value"]
    assert all(floor - 1e-12 <= c(step) <= 1 + 1e-12 for step in range(warmup, total + 3))
    assert c(total) == floor
    # with every control at its default the curve is diffusers' own restarts (cycles cut at fractional
    # steps), pinned elsewhere; the whole-step cycles below are the controls' own
    assume(not CosineWithRestartsFloor.plain(kwargs))
    offsets, lengths, ramps = cycles.plan(total - warmup, kwargs["num_cycles"], kwargs["cycle_mul"], kwargs["restart_warmup_steps"])
    assert len(lengths) == kwargs["num_cycles"] and sum(lengths) == total - warmup
    assert lengths[-1] >= 1 and min(lengths) >= 1
    for k, (offset, length, ramp) in enumerate(zip(offsets, lengths, ramps)):
        peak = max(floor, kwargs["cycle_decay"] ** k)
        values = [c(warmup + offset + local) for local in range(length)]
        assert all(floor - 1e-12 <= v <= peak + 1e-12 for v in values), (k, values)
        decaying = values[ramp:]
        assert all(a >= b - 1e-12 for a, b in zip(decaying, decaying[1:])), (k, decaying)


def test_restart_flags_through_sd_scripts_and_toml(sd_parse, train_util, tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('lr_scheduler_cycle_decay = "0.5"\nlr_scheduler_floor_mode = "clamp"\n')
    args = sd_parse(["--config_file", str(config), "--lr_scheduler", "cosine_with_restarts_floor", "--lr_scheduler_min_value", "0.3",
                     "--lr_scheduler_num_cycles", "3", "--lr_scheduler_cycle_mul", "1.5", "--lr_scheduler_restart_warmup_steps", "0.1",
                     "--max_train_steps", "110", "--lr_warmup_steps", "10"])  # fmt: skip
    import torch

    scheduler = train_util.get_scheduler_fix(args, torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), 1)
    assert scheduler.sdsched == {
        "name": "cosine_with_restarts_floor",
        "min_value": 0.3,
        "num_cycles": 3,
        "cycle_decay": 0.5,
        "cycle_mul": 1.5,
        "restart_warmup_steps": 0.1,
        "floor_mode": "clamp",
        "num_warmup_steps": 10,
        "num_training_steps": 110,
    }


def test_hook_form_takes_restart_keys(sd_parse, train_util):
    import torch

    args = sd_parse(["--lr_scheduler_type", "sdsched_plugin:cosine_with_restarts_floor", "--lr_scheduler_args", "min_value=0.3",
                     "num_cycles=2", "cycle_decay=0.5", "restart_warmup_steps=4", "--max_train_steps", "60"])  # fmt: skip
    scheduler = train_util.get_scheduler_fix(args, torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0), 1)
    lam = scheduler.lr_lambdas[0]
    assert lam(30) == pytest.approx(0.3) and lam(34) == pytest.approx(0.5)


def test_bad_restart_flag_stops_at_parse_time(sd_parse, capsys):
    with pytest.raises(SystemExit):
        sd_parse(["--lr_scheduler", "cosine_with_restarts_floor", "--lr_scheduler_min_value", "0.3", "--lr_scheduler_num_cycles", "3",
                  "--lr_scheduler_restart_warmup_steps", "40", "--max_train_steps", "90"])  # fmt: skip
    err = capsys.readouterr().err
    assert "--lr_scheduler_restart_warmup_steps: got 40" in err and "サイクル" in err


def test_restart_flags_with_another_schedule_warn_once(sd_parse, train_util, caplog):
    with caplog.at_level(logging.WARNING, logger="sdsched_plugin"):
        sd_parse(["--lr_scheduler", "cosine_floor", "--lr_scheduler_min_value", "0.3", "--lr_scheduler_cycle_decay", "0.5", "--max_train_steps", "10"])
    assert [r.getMessage() for r in caplog.records if "only shape cosine_with_restarts_floor" in r.getMessage()] != []
    assert "--lr_scheduler_cycle_decay" in caplog.text
