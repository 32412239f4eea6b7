"""The patch of musubi-tuner before v0.3.0, where one module, ``hv_train_network``, holds the
parser, ``read_config_from_file`` and ``NetworkTrainer``: the v0.1.0-v0.1.6 and v0.2.x
stand-ins, or a real checkout of either old layout with MUSUBI_TUNER_DIR. Imported by name
(as ``wan_train_network.py`` does) and run as ``__main__`` (``python hv_train_network.py``).
"""

import importlib
import json
import math
import os
import sys
import types
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from conftest import assert_two_cycles_floored_at_half, MUSUBI_DIR, MUSUBI_IS_NEW, MUSUBI_LAYOUT, MUSUBI_TUNER_DIR, TESTS, Run, lr_trace, run_driver, two_group_optimizer
from sdsched_plugin.hosts import patching as hostpatch, musubi
from sdsched_plugin.schedulers import CosineFloor

LR = 1e-3
# required up to v0.1.6, accepted by every version, never read before the model loads
REQUIRED = ["--dit", "dit.safetensors", "--dataset_config", "dataset.toml", "--output_name", "lora"]


@dataclass(frozen=True)
class Host:
    root: Path  # the folder that goes on sys.path
    module: str
    real: bool

    @property
    def script(self) -> Path:
        return self.root / (self.module.replace(".", "/") + ".py")

    @property
    def tiny_host(self) -> str:
        return "musubi_v02" if self.module.startswith("musubi_tuner.") else "musubi_v01"

    def env(self, **extra):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(self.root), env.get("PYTHONPATH")]))
        env["COLUMNS"] = "1000"
        env.update(extra)
        return env


if MUSUBI_TUNER_DIR and not MUSUBI_IS_NEW:
    module_name = "hv_train_network" if MUSUBI_LAYOUT.startswith("top-level") else "musubi_tuner.hv_train_network"
    HOSTS = {f"real {MUSUBI_TUNER_DIR.name}": Host(MUSUBI_DIR, module_name, real=True)}
else:
    HOSTS = {
        "v0.1.0-v0.1.6 stand-in": Host(TESTS / "standin_musubi_v01", "hv_train_network", real=False),
        "v0.2.x stand-in": Host(TESTS / "standin_musubi_v02", "musubi_tuner.hv_train_network", real=False),
    }
OWN_NAMES = ("musubi_tuner", "hv_train_network")


@pytest.fixture(scope="module", params=list(HOSTS))
def host(request):
    """The host's hv_train_network, imported in this process. Other musubi_tuner modules (the
    stand-in of the new layout) step aside meanwhile: the old package has the same name."""
    host = HOSTS[request.param]
    saved = {name: sys.modules.pop(name) for name in list(sys.modules) if name.split(".")[0] in OWN_NAMES}
    sys.path.insert(0, str(host.root))
    try:
        module = importlib.import_module(host.module)
        assert Path(module.__file__).resolve().is_relative_to(host.root.resolve()), module.__file__
        assert musubi.activate_hv_train_network(module)  # a no-op when the .pth hook patched it at import
        yield host, module
    finally:
        sys.path.remove(str(host.root))
        for name in [name for name in sys.modules if name.split(".")[0] in OWN_NAMES]:
            del sys.modules[name]
        sys.modules.update(saved)


def parser_function(module):
    return getattr(module, "setup_parser_common", None) or module.setup_parser  # setup_parser up to v0.1.6


def scheduler_method(trainer):
    return getattr(trainer, "get_lr_scheduler", None) or trainer.get_scheduler  # get_scheduler up to v0.1.6


@pytest.fixture
def parse(host, monkeypatch):
    _, module = host

    def parse(argv):
        argv = [*REQUIRED, *argv]
        monkeypatch.setattr(sys, "argv", ["hv_train_network.py", *argv])  # read_config_from_file parses it again
        parser = parser_function(module)()
        return module.read_config_from_file(parser.parse_args(argv), parser)

    return parse


def build(host, args, num_processes=1):
    _, module = host
    optimizer = two_group_optimizer(LR, LR / 2)

    class WanLikeTrainer(module.NetworkTrainer):  # wan_train_network's trainer is a subclass
        def __init__(self):
            pass

    return scheduler_method(WanLikeTrainer())(args, optimizer, num_processes), optimizer


def test_the_three_functions_are_patched_once_and_undone(host):
    _, module = host
    patches = musubi.old_layout_patches(module)
    assert [patch.name for patch in patches][1:] == ["read_config_from_file", scheduler_method(module.NetworkTrainer).__name__]
    assert musubi.is_old_layout_installed(module)
    patched = [getattr(patch.owner, patch.name) for patch in patches]
    assert musubi.activate_hv_train_network(module)
    assert [getattr(patch.owner, patch.name) for patch in patches] == patched  # not wrapped twice
    assert "--lr_scheduler_min_value" in parser_function(module)()._option_string_actions
    try:
        for patch in patches:
            hostpatch.uninstall_patch(patch.owner, patch.name)
        assert [getattr(patch.owner, patch.name) for patch in patches] == [function.__wrapped__ for function in patched]
        assert "--lr_scheduler_min_value" not in parser_function(module)()._option_string_actions
    finally:
        assert musubi.activate_hv_train_network(module)
    assert musubi.is_old_layout_installed(module)


def test_floored_schedule_with_two_processes_matches_the_formula(host, parse):
    args = parse(["--lr_scheduler", "cosine_with_restarts_floor", "--lr_scheduler_min_value", "0.5", "--lr_scheduler_num_cycles", "2",
                  "--max_train_steps", "30", "--lr_warmup_steps", "0.1"])  # fmt: skip
    scheduler, optimizer = build(host, args, num_processes=2)
    assert_two_cycles_floored_at_half(scheduler, optimizer, LR)


def test_a_toml_floor_on_a_stock_name_is_used_not_ignored(host, parse, tmp_path):
    """The case of the issue: the run decayed to 0 with this TOML."""
    config = tmp_path / "hunyuan.toml"
    config.write_text('lr_scheduler = "cosine"\nlr_scheduler_min_value = 0.5\nmax_train_steps = 20\n')
    scheduler, _ = build(host, parse(["--config_file", str(config)]))
    assert type(scheduler) is CosineFloor
    assert [scheduler.lr_lambdas[0](step) for step in (0, 10, 20)] == pytest.approx([1.0, 0.75, 0.5])


@pytest.mark.parametrize("name", ["linear", "cosine", "cosine_with_restarts"])
def test_zero_floor_is_musubi_own_schedule(host, parse, name):
    common = ["--max_train_steps", "25", "--lr_warmup_steps", "3", "--lr_scheduler_num_cycles", "2"]
    ours = build(host, parse(["--lr_scheduler", name + "_floor", "--lr_scheduler_min_value", "0", *common]))
    stock = build(host, parse(["--lr_scheduler", name, *common]))
    assert type(stock[0]) is torch.optim.lr_scheduler.LambdaLR
    assert lr_trace(*ours, 26) == lr_trace(*stock, 26)


def outcome(call):
    """The type of what a scheduler factory returns, or of what it raises."""
    try:
        return type(call()).__name__
    except Exception as error:  # before v0.2.15 musubi-tuner's own schedule-free branch raises
        return type(error).__name__


@pytest.mark.parametrize(
    "argv",
    [
        ["--lr_scheduler", "constant"],
        ["--lr_scheduler_type", "CosineAnnealingLR", "--lr_scheduler_args", "T_max=10"],
        ["--lr_scheduler", "cosine_floor", "--optimizer_type", "AdamWScheduleFree"],
    ],
)
def test_what_is_not_ours_goes_to_musubi_untouched(host, parse, argv):
    args = parse([*argv, "--max_train_steps", "20"])
    trainer = host[1].NetworkTrainer()
    patched = scheduler_method(trainer)
    assert outcome(lambda: patched(args, two_group_optimizer(), 1)) == outcome(lambda: patched.__wrapped__(trainer, args, two_group_optimizer(), 1))


@pytest.mark.parametrize(
    "argv, toml, detail",
    [
        (["--lr_scheduler", "cosine_floor", "--lr_scheduler_min_value", "1.5"], None, "--lr_scheduler_min_value: got '1.5'"),
        ([], 'lr_scheduler = "cosine"\nlr_scheduler_min_value = 1.5\n', "--lr_scheduler_min_value: got 1.5"),
        (["--lr_scheduler", "cosine_floor"], None, "cosine_floor needs a floor"),
        (["--lr_scheduler_type", "sdsched_plugin:cosine_flor"], None, "Did you mean: cosine_floor"),
    ],
)
def test_bad_input_stops_at_parse_time(parse, tmp_path, capsys, argv, toml, detail):
    if toml is not None:
        (tmp_path / "bad.toml").write_text(toml)
        argv = [*argv, "--config_file", str(tmp_path / "bad.toml")]
    with pytest.raises(SystemExit) as caught:
        parse(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert detail in err and " / " in err


def fake_hv_train_network(code):
    module = types.ModuleType("hv_train_network")
    exec(code, module.__dict__)
    return module


@pytest.mark.parametrize(
    "code, why",
    [
        # a future version with another signature
        ("def setup_parser_common(): pass\ndef read_config_from_file(args, parser, strict): pass\n"
         "class NetworkTrainer:\n    def get_lr_scheduler(self, args, optimizer, num_processes): pass\n",
         "read_config_from_file('args', 'parser', 'strict') does not take ('args', 'parser')"),
        # the functions moved where no hook looks
        ("from argparse import ArgumentParser as read_config_from_file\n", "has none of the functions the plugin patches"),
    ],
)  # fmt: skip
def test_a_layout_the_plugin_does_not_know_gets_one_line_naming_the_supported_versions(code, why, caplog, monkeypatch):
    for name in (musubi.PARSER_MODULE, musubi.TRAINER_MODULE, *musubi.OLD_MODULES):
        monkeypatch.delitem(sys.modules, name, raising=False)
    module = fake_hv_train_network(code)
    assert not musubi.activate_hv_train_network(module)
    [record] = [record for record in caplog.records if record.name == "sdsched_plugin"]
    assert why in record.message and "not patched, the floored schedules are off" in record.message
    assert f"supported: {musubi.SUPPORTED}" in record.message and "対応版" in record.message


# --- real processes of a venv with the built wheel: the .pth hook does it all ---------------------


def run_python(python, host, argv, tmp_path, timeout=600):
    return Run([str(python), *argv], env=host.env(), cwd=tmp_path).finish(timeout)


@pytest.fixture(params=list(HOSTS))
def process_host(request):
    return HOSTS[request.param]


def test_a_script_that_imports_the_names_trains_with_the_floor(wheel_venv, process_host):
    """As wan_train_network.py: ``from musubi_tuner.hv_train_network import setup_parser_common, ...``."""
    argv = [*REQUIRED, "--lr_scheduler", "cosine_floor", "--lr_scheduler_min_value", "0.4", "--max_train_steps", "6", "--learning_rate", "1e-3"]
    process, traces = run_driver(argv, python=wheel_venv, env=process_host.env(TINY_HOST=process_host.tiny_host))
    assert process.returncode == 0, process.stderr[-3000:]
    assert traces[0]["scheduler"] == "CosineFloor"
    assert traces[0]["trace"][-1]["last_lr"][0] == pytest.approx(0.4e-3)


def test_hv_train_network_run_as_main_lists_our_flags(wheel_venv, process_host, tmp_path):
    if not process_host.real:
        pytest.skip("a stand-in is run as __main__ with our flags below")
    process = run_python(wheel_venv, process_host, [str(process_host.script), "--help"], tmp_path)
    assert process.returncode == 0, process.stderr[-3000:]
    assert "--lr_scheduler_min_value" in process.stdout and "--lr_scheduler_cycle_decay" in process.stdout


def test_hv_train_network_run_as_main_stops_on_a_bad_toml_before_the_model(wheel_venv, process_host, tmp_path):
    (tmp_path / "bad.toml").write_text('lr_scheduler = "cosine"\nlr_scheduler_min_value = 1.5\n')
    argv = [str(process_host.script), *REQUIRED, "--config_file", str(tmp_path / "bad.toml"), "--output_dir", str(tmp_path)]
    process = run_python(wheel_venv, process_host, argv, tmp_path)
    assert process.returncode == 2, process.stderr[-3000:]
    assert "--lr_scheduler_min_value: got 1.5" in process.stderr and "MODEL LOADING" not in process.stdout


@pytest.mark.parametrize("how", ["file", "-m"])
def test_hv_train_network_run_as_main_trains_with_the_floor(wheel_venv, process_host, tmp_path, how):
    if process_host.real:
        pytest.skip("a real train() loads models; the stand-in's train() writes the LRs")
    if how == "-m" and process_host.tiny_host != "musubi_v02":
        pytest.skip("v0.1.x is run as a file")
    config = tmp_path / "hunyuan.toml"
    config.write_text('lr_scheduler = "cosine"\nmax_train_steps = 10\nlearning_rate = 1e-3\n')
    script = [str(process_host.script)] if how == "file" else ["-m", process_host.module]
    # our flag on the command line: the parser the script built unpatched has it all the same
    argv = [*script, *REQUIRED, "--config_file", str(config), "--lr_scheduler_min_value", "0.5", "--output_dir", str(tmp_path)]
    process = run_python(wheel_venv, process_host, argv, tmp_path)
    assert process.returncode == 0, process.stderr[-3000:]
    record = json.loads((tmp_path / "lr_trace.json").read_text())
    assert record["scheduler"] == "CosineFloor"
    want = [0.5 + 0.25 * (1 + math.cos(math.pi * step / 10)) for step in range(10)]
    assert [unet for unet, _ in record["trace"]] == pytest.approx([LR * w for w in want])
