"""The patch of musubi-tuner (stand-in, or a real checkout with MUSUBI_TUNER_DIR): the same
flags, meaning and messages as in sd-scripts, through musubi's own functions."""

import importlib
import subprocess
import sys

import pytest
import torch

from conftest import assert_two_cycles_floored_at_half, MUSUBI_DIR, MUSUBI_IS_NEW, MUSUBI_LAYOUT, host_env, lr_trace, run_driver, two_group_optimizer
from sdsched_plugin.hosts import patching as hostpatch, musubi
from sdsched_plugin.schedule.cycles import PLAIN as PLAIN_RESTARTS

LR = 1e-3
# the layout before v0.3.0 has its own tests (test_musubi_old.py)
pytestmark = pytest.mark.skipif(not MUSUBI_IS_NEW, reason=f"MUSUBI_TUNER_DIR holds the {MUSUBI_LAYOUT} layout")


@pytest.fixture(scope="module")
def musubi_modules():
    if str(MUSUBI_DIR) not in sys.path:
        sys.path.insert(0, str(MUSUBI_DIR))
    parser_common = importlib.import_module(musubi.PARSER_MODULE)
    trainer_base = importlib.import_module(musubi.TRAINER_MODULE)
    assert str(MUSUBI_DIR) in parser_common.__file__
    assert musubi.install()  # a no-op when the .pth hook patched them at import
    return parser_common, trainer_base


@pytest.fixture
def parse(musubi_modules, monkeypatch):
    parser_common, _ = musubi_modules

    def parse(argv):
        monkeypatch.setattr(sys, "argv", ["wan_train_network.py", *argv])  # read_config_from_file parses it again
        parser = parser_common.setup_parser_common()
        return parser_common.read_config_from_file(parser.parse_args(argv), parser)

    return parse


def build(musubi_modules, args, num_processes=1):
    _, trainer_base = musubi_modules
    optimizer = two_group_optimizer(LR, LR / 2)

    class WanLikeTrainer(trainer_base.NetworkTrainer):  # every musubi trainer is a subclass
        def __init__(self):
            pass

    return WanLikeTrainer().get_lr_scheduler(args, optimizer, num_processes), optimizer


def test_both_modules_are_patched_once_and_restored(musubi_modules):
    parser_common, trainer_base = musubi_modules
    assert musubi.is_installed()
    method = trainer_base.NetworkTrainer.get_lr_scheduler
    assert musubi.install() and trainer_base.NetworkTrainer.get_lr_scheduler is method
    assert not getattr(method.__wrapped__, "sdsched_patched", False)
    try:
        hostpatch.uninstall()
        assert not musubi.is_installed()
        assert trainer_base.NetworkTrainer.get_lr_scheduler is method.__wrapped__
    finally:
        musubi.install()
        from sdsched_plugin.hosts import sd_scripts

        if "library.train_util" in sys.modules:  # uninstall() restores every host
            sd_scripts.install(sys.modules["library.train_util"])
    assert musubi.is_installed()


def test_floored_schedule_with_two_processes_matches_the_formula(parse, musubi_modules):
    args = parse(["--lr_scheduler", "cosine_with_restarts_floor", "--lr_scheduler_min_value", "0.5", "--lr_scheduler_num_cycles", "2",
                  "--max_train_steps", "30", "--lr_warmup_steps", "0.1"])  # fmt: skip
    scheduler, optimizer = build(musubi_modules, args, num_processes=2)
    assert_two_cycles_floored_at_half(scheduler, optimizer, LR)


@pytest.mark.parametrize("name", ["linear", "cosine", "cosine_with_restarts"])
def test_zero_floor_is_musubi_own_schedule(parse, musubi_modules, name):
    common = ["--max_train_steps", "25", "--lr_warmup_steps", "3", "--lr_scheduler_num_cycles", "2"]
    ours = build(musubi_modules, parse(["--lr_scheduler", name + "_floor", "--lr_scheduler_min_value", "0", *common]))
    stock = build(musubi_modules, parse(["--lr_scheduler", name, *common]))
    assert type(stock[0]) is torch.optim.lr_scheduler.LambdaLR
    assert lr_trace(*ours, 26) == lr_trace(*stock, 26)


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--lr_scheduler", "constant"], "LambdaLR"),
        (["--lr_scheduler_type", "CosineAnnealingLR", "--lr_scheduler_args", "T_max=10"], "CosineAnnealingLR"),
        (["--lr_scheduler", "cosine_floor", "--optimizer_type", "AdamWScheduleFree"], "DummyScheduler"),
    ],
)
def test_what_is_not_ours_goes_to_musubi_untouched(parse, musubi_modules, argv, expected):
    scheduler, _ = build(musubi_modules, parse([*argv, "--max_train_steps", "20"]))
    assert type(scheduler).__name__ == expected


def test_hook_form_and_restart_controls_from_toml(parse, musubi_modules, tmp_path):
    config = tmp_path / "wan.toml"
    config.write_text('lr_scheduler_type = "sdsched_plugin:cosine_with_restarts_floor"\nlr_scheduler_args = ["min_value=0.3", "num_cycles=3"]\n'
                      'lr_scheduler_cycle_decay = "0.5"\nmax_train_steps = 90\n')  # fmt: skip
    scheduler, _ = build(musubi_modules, parse(["--config_file", str(config)]))
    assert scheduler.sdsched == {
        "name": "cosine_with_restarts_floor", **PLAIN_RESTARTS, "cycle_decay": 0.5,
        "min_value": 0.3, "num_cycles": 3, "num_warmup_steps": 0, "num_training_steps": 90,
    }  # fmt: skip
    assert [scheduler.lr_lambdas[0](s) for s in (0, 30, 60)] == pytest.approx([1.0, 0.5, 0.3])


@pytest.mark.parametrize(
    "argv, detail",
    [
        (["--lr_scheduler", "cosine_floor", "--lr_scheduler_min_value", "1.5"], "--lr_scheduler_min_value: got '1.5'"),
        (["--lr_scheduler_type", "sdsched_plugin:cosine_flor"], "Did you mean: cosine_floor"),
        (["--lr_scheduler", "cosine_floor", "--lr_scheduler_min_value", "0.5", "--lr_scheduler_args", "gamma=1"], "--lr_scheduler_args: got 'gamma=1'"),
        (["--lr_scheduler", "cosine_with_restarts_floor", "--lr_scheduler_min_value", "0.5", "--lr_scheduler_cycle_mul", "0.5"], "--lr_scheduler_cycle_mul: got '0.5'"),
    ],
)
def test_bad_input_stops_at_parse_time_with_the_same_messages(parse, argv, detail, capsys):
    with pytest.raises(SystemExit) as caught:
        parse(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert detail in err and " / " in err


def test_hv_train_network_of_this_layout_only_reexports_patched_functions(musubi_modules, caplog):
    """From v0.3.0 the trainers still import the three names from musubi_tuner.hv_train_network,
    which takes them from the training package: its hook finds them patched and adds nothing."""
    parser_common, trainer_base = musubi_modules
    module = importlib.import_module("musubi_tuner.hv_train_network")
    assert not musubi.defines_its_own_functions(module)
    assert musubi.activate_hv_train_network(module) and "sdsched-plugin" not in caplog.text
    assert module.read_config_from_file is parser_common.read_config_from_file
    assert module.NetworkTrainer.get_lr_scheduler is trainer_base.NetworkTrainer.get_lr_scheduler
    assert not hasattr(module.setup_parser_common, "sdsched_patched")  # its helper is patched, not it


def test_pth_hook_patches_musubi_in_a_real_training_process(wheel_venv):
    process, traces = run_driver(
        ["--lr_scheduler", "cosine_floor", "--lr_scheduler_min_value", "0.4", "--max_train_steps", "6", "--learning_rate", "1e-3"],
        python=wheel_venv,
        env=host_env(TINY_HOST="musubi"),
    )
    assert process.returncode == 0, process.stderr[-2000:]
    assert traces[0]["scheduler"] == "CosineFloor"
    assert traces[0]["trace"][-1]["last_lr"][0] == pytest.approx(0.4e-3)


def test_bad_values_stop_a_musubi_script_before_the_model_loads():
    process, _ = run_driver(["--lr_scheduler", "cosine_floor"], env=host_env(TINY_HOST="musubi"))
    assert process.returncode == 2 and "MODEL LOADING" not in process.stdout
    assert "cosine_floor needs a floor" in process.stderr


def test_importing_musubi_modules_costs_nothing_else_at_startup(wheel_venv):
    """The hook only acts on import of musubi's modules; a process that never imports them pays nothing."""
    code = "import sys; print(sorted(m for m in sys.modules if m.startswith(('sdsched_plugin', '_sdsched', 'musubi'))))"
    out = subprocess.run([str(wheel_venv), "-c", code], capture_output=True, text=True, env=host_env(), timeout=120, cwd=wheel_venv.parent)
    assert out.stdout.strip() == "['_sdsched_plugin_boot']"
