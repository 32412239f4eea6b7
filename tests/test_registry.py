"""Layer 3: the registry, with fake entry points standing in for third-party packages."""

import subprocess
import sys
import types
from importlib.metadata import EntryPoint

import pytest
import torch

from sdsched_plugin import registry
from sdsched_plugin.schedulers import FloorScheduler


def exponential_schedule(optimizer, num_warmup_steps, num_training_steps, gamma):
    """A diffusers-style schedule function, as a third-party package would bring one."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: step / num_warmup_steps if step < num_warmup_steps else gamma ** (step - num_warmup_steps)
    )


class ExponentialFloor(FloorScheduler):
    name = "exponential_floor"
    base_name = "exponential"
    stock_function = staticmethod(exponential_schedule)
    stock_fixed = {"gamma": 0.5}


@pytest.fixture
def fake_plugins(monkeypatch):
    module = types.ModuleType("fake_schedule_plugin")
    module.ExponentialFloor = ExponentialFloor
    module.NotAScheduler = object
    monkeypatch.setitem(sys.modules, "fake_schedule_plugin", module)
    real = dict(registry._read_entry_points())
    fakes = {
        "exponential_floor": EntryPoint("exponential_floor", "fake_schedule_plugin:ExponentialFloor", registry.GROUP),
        "broken_floor": EntryPoint("broken_floor", "no_such_package_xyz:Floor", registry.GROUP),
        "wrong_floor": EntryPoint("wrong_floor", "fake_schedule_plugin:NotAScheduler", registry.GROUP),
    }
    monkeypatch.setattr(registry, "_entry_points", {**real, **fakes})
    monkeypatch.setattr(registry, "_registered", {})
    monkeypatch.setattr(registry, "_broken", {})
    return fakes


def test_builtin_names_come_from_the_entry_point_group():
    assert {"linear_floor", "cosine_floor", "cosine_with_restarts_floor", "polynomial_floor"} <= set(registry.names())
    assert registry.get("cosine_floor").__name__ == "CosineFloor"


def test_a_third_party_schedule_is_found_and_built(fake_plugins):
    cls = registry.get("exponential_floor")
    assert cls is ExponentialFloor
    curve = cls.curve(cls.settings(num_training_steps=10, num_warmup_steps=2, min_value=0.2))
    assert [curve(s) for s in (1, 2, 3, 4, 10)] == pytest.approx([0.5, 1.0, 0.6, 0.4, 0.2])


def test_a_broken_entry_point_is_reported_once_and_hides_nothing(fake_plugins, capsys):
    with pytest.raises(registry.UnknownSchedule):
        registry.get("broken_floor")
    assert capsys.readouterr().err.count("skipping schedule 'broken_floor' from no_such_package_xyz:Floor") == 1
    with pytest.raises(registry.UnknownSchedule, match="wrong_floor"):
        registry.get("wrong_floor")
    assert "is not a sdsched_plugin.schedulers.FloorScheduler subclass" in capsys.readouterr().err
    assert registry.get("exponential_floor") is ExponentialFloor
    assert registry.get("linear_floor").__name__ == "LinearFloor"
    assert "broken_floor" not in registry.names() and "exponential_floor" in registry.names()


def test_unknown_names_list_the_close_ones_in_both_languages():
    with pytest.raises(registry.UnknownSchedule) as caught:
        registry.get("cosine_with_restart_floor", "--lr_scheduler_type")
    message = str(caught.value)
    assert message.startswith("--lr_scheduler_type: unknown schedule 'cosine_with_restart_floor'. Did you mean: cosine_with_restarts_floor")
    assert "近い名前" in message


def test_register_adds_a_schedule_at_run_time(monkeypatch):
    monkeypatch.setattr(registry, "_registered", {})
    registry.register(ExponentialFloor)
    assert registry.has("exponential_floor") and registry.get("exponential_floor") is ExponentialFloor


def test_entry_points_are_read_only_when_a_name_is_looked_up():
    code = (
        "import sys; from sdsched_plugin import registry, arguments; print('importlib.metadata' in sys.modules);"
        " registry.names(); print('importlib.metadata' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]
