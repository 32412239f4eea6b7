"""Layer 1: the pure floor math and option reading, without torch."""

import math
import subprocess
import sys

import pytest

from sdsched_plugin.schedule import options
from sdsched_plugin.schedule.floor import floored_curve, warmup_steps_from


def hand_cosine(warmup, total):
    """The stock cosine written out by hand (not diffusers), to check the floor against."""

    def curve(step):
        if step < warmup:
            return step / max(1, warmup)
        progress = (step - warmup) / max(1, total - warmup)
        return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))

    return curve


@pytest.mark.parametrize("min_value", [0.0, 0.3, 0.5, 1.0])
def test_floored_cosine_is_the_wiki_formula(min_value):
    warmup, total = 10, 100
    curve = floored_curve(hand_cosine(warmup, total), min_value, warmup, total)
    assert curve(0) == 0.0  # warmup starts at 0, unchanged from sd-scripts
    assert curve(5) == 0.5
    assert curve(warmup) == pytest.approx(1.0)
    assert curve(55) == pytest.approx(min_value + (1 - min_value) * 0.5)
    for step in range(warmup, total):
        progress = (step - warmup) / (total - warmup)
        expected = min_value + (1 - min_value) * 0.5 * (1 + math.cos(math.pi * progress))
        assert curve(step) == pytest.approx(expected, rel=1e-12, abs=1e-15)
        assert curve(step) >= min_value
    # at and after the last scheduled step: the floor, never 0, never climbing back
    assert curve(total) == min_value
    assert curve(total + 1) == min_value
    assert curve(10 * total) == min_value


def test_zero_floor_is_the_stock_curve():
    stock = hand_cosine(5, 50)
    curve = floored_curve(stock, 0.0, 5, 50)
    assert [curve(s) for s in range(51)] == [stock(s) for s in range(51)]


@pytest.mark.parametrize(
    "given, total, expected",
    [(None, 100, 0), (0, 100, 0), (10, 100, 10), (0.1, 100, 10), (0.05, 30, 1), (0.999, 10, 9)],
)
def test_warmup_steps_read_like_sd_scripts(given, total, expected):
    assert warmup_steps_from(given, total) == expected


@pytest.mark.parametrize("value, expected", [("0.5", 0.5), (0, 0.0), (1, 1.0), ("0", 0.0), (0.3, 0.3), (" 1e-1 ", 0.1)])
def test_min_value_accepts_numbers_and_numeric_strings(value, expected):
    assert options.min_value(value) == expected


@pytest.mark.parametrize("value", [-0.1, 1.5, "nan", float("nan"), "inf", "abc", "", True, [0.5]])
def test_min_value_rejects_with_flag_value_and_both_languages(value):
    with pytest.raises(ValueError) as caught:
        options.min_value(value)
    message = str(caught.value)
    assert message.startswith("--lr_scheduler_min_value: got ")
    assert repr(value) in message
    assert "from 0 to 1" in message and "0 から 1" in message


def test_a_missing_value_is_called_missing_not_none():
    with pytest.raises(ValueError) as caught:
        options.min_value(None)
    assert str(caught.value).startswith("--lr_scheduler_min_value: missing; a number from 0 to 1")
    assert "None" not in str(caught.value) and "指定がありません" in str(caught.value)


@pytest.mark.parametrize("value, expected", [(1, 1), ("2", 2), (3.0, 3)])
def test_num_cycles_accepts_whole_numbers(value, expected):
    assert options.num_cycles(value) == expected


@pytest.mark.parametrize("value", [0, -1, "0", 1.5, "1.5", "two"])
def test_num_cycles_rejects(value):
    with pytest.raises(ValueError, match="--lr_scheduler_num_cycles: got .*1 以上の整数"):
        options.num_cycles(value)


@pytest.mark.parametrize(
    "value, expected", [(0, 0), (10, 10), ("10", 10), (0.1, 0.1), ("0.1", 0.1), ("5%", 0.05), ("0%", 0.0)]
)
def test_warmup_accepts_steps_ratios_and_percent(value, expected):
    result = options.warmup(value)
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize("value", [-1, 1.5, "1.5", "100%", "x%", "abc"])
def test_warmup_rejects(value):
    with pytest.raises(ValueError, match="--lr_warmup_steps: got"):
        options.warmup(value)


def test_parse_key_values_reads_each_value_by_its_option():
    values = options.parse_key_values(["min_value=0.5", "num_cycles=2", "power='2'"], ["min_value", "num_cycles", "power"])
    assert values == {"min_value": 0.5, "num_cycles": 2, "power": 2.0}


@pytest.mark.parametrize("token", ["min_value", "gamma=0.5", "=0.5"])
def test_parse_key_values_rejects_malformed_and_unknown_listing_known_keys(token):
    with pytest.raises(ValueError) as caught:
        options.parse_key_values([token], ["min_value", "num_cycles"])
    assert "--lr_scheduler_args" in str(caught.value) and "min_value, num_cycles" in str(caught.value)


def test_parse_key_values_checks_the_value_too():
    with pytest.raises(ValueError, match=r"--lr_scheduler_args min_value: got '2'"):
        options.parse_key_values(["min_value=2"], ["min_value"])


def test_warmup_must_leave_a_decaying_part():
    options.check_warmup_fits(99, 100)
    with pytest.raises(ValueError, match=r"--lr_warmup_steps: got 100.*\(100\)"):
        options.check_warmup_fits(100, 100)


def test_math_layers_import_no_torch():
    code = "import sys, sdsched_plugin.schedule.floor, sdsched_plugin.schedule.options; print(sorted(m for m in ('torch', 'diffusers', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
