"""Layer 3: the registry, with fake entry points standing in for third-party packages."""

import subprocess
import sys
import types
from importlib.metadata import EntryPoint

import pytest
import torch

from sdsched_plugin.schedule import options, registry, specs
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


class RaisingFloor(FloorScheduler):
    """A third-party schedule with a bug in its check."""

    name = "raising_floor"
    base_name = "linear"
    stock_function = staticmethod(exponential_schedule)
    stock_fixed = {"gamma": 0.5}

    @classmethod
    def check(cls, settings):
        if settings["min_value"] > 0.5:
            raise KeyError("gamma")
        if settings["min_value"] == 0.5:
            raise options.OptionError("--lr_scheduler_min_value", 0.5, "not 0.5", "0.5 以外")


@pytest.fixture
def fake_plugins(monkeypatch):
    module = types.ModuleType("fake_schedule_plugin")
    module.ExponentialFloor = ExponentialFloor
    module.RaisingFloor = RaisingFloor
    module.NotAScheduler = object
    monkeypatch.setitem(sys.modules, "fake_schedule_plugin", module)
    real = dict(registry._read_entry_points())
    dist = types.SimpleNamespace(name="fake-schedules")
    fakes = {
        "exponential_floor": EntryPoint("exponential_floor", "fake_schedule_plugin:ExponentialFloor", registry.GROUP),
        "raising_floor": EntryPoint("raising_floor", "fake_schedule_plugin:RaisingFloor", registry.GROUP)._for(dist),
        "broken_floor": EntryPoint("broken_floor", "no_such_package_xyz:Floor", registry.GROUP),
        "wrong_floor": EntryPoint("wrong_floor", "fake_schedule_plugin:NotAScheduler", registry.GROUP)._for(dist),
    }
    monkeypatch.setattr(registry, "_entry_points", {**real, **fakes})
    monkeypatch.setattr(registry, "_registered", {})
    monkeypatch.setattr(registry, "_loaded", {})
    monkeypatch.setattr(registry, "_broken", {})
    return fakes


OWN = {"linear_floor", "cosine_floor", "cosine_with_restarts_floor", "polynomial_floor", "rex_floor"}


def test_builtin_names_come_from_the_entry_point_group():
    assert OWN <= set(registry.names())
    assert registry.get("cosine_floor").__name__ == "CosineFloor"
    from sdsched_plugin.schedule.schedulers import CosineFloor

    assert registry.get("cosine_floor") is CosineFloor  # the class itself, not a guarded third party


def test_the_own_entry_points_are_own_before_and_after_the_subpackages():
    """The package's entry points name sdsched_plugin.schedule.schedulers; an install made before
    the subpackages still names sdsched_plugin.schedulers. Both are the package's own: listed and
    looked up without loading a class (no torch: `sdsched list` and an unknown name's message)."""
    for value in ("sdsched_plugin.schedule.schedulers:CosineFloor", "sdsched_plugin.schedulers:CosineFloor"):
        assert registry._is_own(EntryPoint("cosine_floor", value, registry.GROUP))
    assert not registry._is_own(EntryPoint("x_floor", "sdsched_plugin_extra.schedulers:XFloor", registry.GROUP))
    code = "import sys; from sdsched_plugin.schedule import registry; registry.names(); registry.unknown_message('cosin', '--lr_scheduler'); print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_third_party_schedule_is_found_and_built(fake_plugins):
    cls = registry.get("exponential_floor")
    assert cls.cls is ExponentialFloor and cls.name == "exponential_floor"
    curve = cls.curve(cls.settings(num_training_steps=10, num_warmup_steps=2, min_value=0.2))
    assert [curve(s) for s in (1, 2, 3, 4, 10)] == pytest.approx([0.5, 1.0, 0.6, 0.4, 0.2])
    scheduler = cls(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0), num_training_steps=10, min_value=0.2)
    assert isinstance(scheduler, ExponentialFloor)
    assert registry.spec("exponential_floor").cls is ExponentialFloor
    # a third-party class has no pure curve: its preview curve is its diffusers-style one
    settings = cls.settings(num_training_steps=10, min_value=0.2)
    assert [cls.pure_curve(settings)(s) for s in range(12)] == [cls.curve(settings)(s) for s in range(12)]


def test_broken_entry_points_are_never_listed_as_available(fake_plugins):
    # before anything was looked up: names() tries the third-party ones itself
    available = registry.names()
    assert "exponential_floor" in available and "raising_floor" in available and OWN <= set(available)
    assert "broken_floor" not in available and "wrong_floor" not in available
    failing = registry.broken()
    assert set(failing) == {"broken_floor", "wrong_floor"}
    assert failing["broken_floor"].startswith("no_such_package_xyz:Floor (package no_such_package_xyz): ModuleNotFoundError")
    assert failing["wrong_floor"] == (
        "fake_schedule_plugin:NotAScheduler (package fake-schedules): TypeError: fake_schedule_plugin:NotAScheduler"
        " is not a sdsched_plugin.schedulers.FloorScheduler subclass"
    )


def test_a_broken_entry_point_says_why_and_hides_nothing(fake_plugins, capsys):
    with pytest.raises(registry.UnknownSchedule) as caught:
        registry.get("broken_floor")
    message = str(caught.value)
    assert "unknown schedule 'broken_floor'. It is installed but does not load: no_such_package_xyz:Floor" in message
    assert "\n" not in message and "インストールされていますが読み込めません" in message
    known = message.split(" Known: ")[1].split(" / ")[0].split(", ")
    assert "broken_floor" not in known and "wrong_floor" not in known and "exponential_floor" in known
    with pytest.raises(registry.UnknownSchedule, match="wrong_floor"):
        registry.get("wrong_floor")
    assert capsys.readouterr().err == ""
    assert registry.get("exponential_floor").cls is ExponentialFloor
    assert registry.get("linear_floor").__name__ == "LinearFloor"


def test_an_unknown_name_lists_the_broken_ones_apart(fake_plugins):
    message = registry.unknown_message("cosin", "--lr_scheduler", also=("cosine", "linear"))
    assert "unknown schedule 'cosin'. Did you mean: cosine, " in message
    assert "(not loadable: broken_floor, wrong_floor)" in message
    known = message.split(" Known: ")[1].split(" / ")[0].split(", ")
    assert "cosine" in known and "broken_floor" not in known


def test_what_a_third_party_schedule_raises_becomes_one_line_naming_it(fake_plugins):
    cls = registry.spec("raising_floor", "--lr_scheduler_type")
    with pytest.raises(registry.ScheduleError) as caught:
        cls.settings(num_training_steps=10, min_value=0.7)
    assert str(caught.value) == (
        "--lr_scheduler_type: schedule 'raising_floor' from package fake-schedules (fake_schedule_plugin:RaisingFloor)"
        " failed in settings(): KeyError: 'gamma' / スケジューラ 'raising_floor'(パッケージ fake-schedules)でエラー: KeyError: 'gamma'"
    )
    assert isinstance(caught.value, ValueError) and isinstance(caught.value.__cause__, KeyError)
    with pytest.raises(registry.ScheduleError, match="failed in its constructor: KeyError"):
        cls(torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0), num_training_steps=10, min_value=0.9)
    with pytest.raises(registry.ScheduleError, match="failed in check"):
        cls.check({"min_value": 0.8})
    # an OptionError is already the standard message: it passes unchanged
    with pytest.raises(options.OptionError, match="--lr_scheduler_min_value: got 0.5"):
        cls.settings(num_training_steps=10, min_value=0.5)
    curve = cls.curve(cls.settings(num_training_steps=10, min_value=0.2))
    with pytest.raises(registry.ScheduleError, match="failed in its curve at step x: TypeError"):
        curve("x")


def test_a_third_party_error_stops_sd_scripts_at_parsing_with_exit_2(fake_plugins, sd_parse, capsys):
    with pytest.raises(SystemExit) as caught:
        sd_parse(["--lr_scheduler_type=sdsched_plugin:raising_floor", "--lr_scheduler_min_value=0.7", "--max_train_steps=10"])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert "schedule 'raising_floor' from package fake-schedules" in err and "Traceback" not in err


def test_own_names_give_their_pure_spec_without_torch():
    code = (
        "import sys; from sdsched_plugin.schedule import registry;"
        " spec = registry.spec('cosine_with_restarts_floor', '--lr_scheduler');"
        " s = spec.settings(num_training_steps=50, min_value=0.1, num_cycles=2); spec.pure_curve(s)(10);"
        " print(spec.__name__, registry.has('linear_floor'), *(m in sys.modules for m in ('torch', 'diffusers', 'importlib.metadata')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    # not even the entry points are read for the package's own names
    assert out == ["CosineWithRestartsFloorSpec", "True", "False", "False", "False"]
    assert registry.spec("linear_floor") is specs.LinearFloorSpec
    with pytest.raises(registry.UnknownSchedule, match="--lr_scheduler_type: unknown schedule 'linear_flor'"):
        registry.spec("linear_flor", "--lr_scheduler_type")


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
    assert registry.spec("exponential_floor") is ExponentialFloor


def test_entry_points_are_read_only_when_a_name_is_looked_up():
    code = (
        "import sys; from sdsched_plugin.schedule import registry, arguments; print('importlib.metadata' in sys.modules);"
        " registry.names(); print('importlib.metadata' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]
