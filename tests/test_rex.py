"""rex_floor: REX (Chen et al., MLSys 2022; musubi-tuner's ``rex``) with the floor and the restart
controls: pinned multipliers, musubi-tuner's own factor, a real optimizer's LRs, resume after a
restart, the flags and --lr_scheduler_args through sd-scripts' parser, and the errors."""

import json
import subprocess
import sys

import pytest

from conftest import MUSUBI_DIR, MUSUBI_TUNER_DIR, host_env, lr_trace, resumed_and_original, run_driver, two_group_optimizer
from sdsched_plugin.schedule import options, specs
from sdsched_plugin.schedulers import RexFloor


def rex(z, alpha=0.1, beta=0.9):
    return z / (alpha + beta * z)


def test_one_cycle_is_the_floored_rex_after_sd_scripts_warmup():
    curve = RexFloor.curve(RexFloor.settings(num_training_steps=100, num_warmup_steps=10, min_value=0.3))
    for step in range(10):
        assert curve(step) == step / 10
    for step in range(10, 100):
        z = (90 - (step - 10)) / 90
        assert curve(step) == pytest.approx(0.3 + 0.7 * rex(z), rel=1e-15)
    assert curve(10) == 1.0 and curve(100) == curve(500) == 0.3
    assert curve(99) == pytest.approx(0.3 + 0.7 * rex(1 / 90), rel=1e-15)  # REX keeps ~0.1 of the peak at the last step


def test_alpha_and_beta_as_musubi_tuner_reads_them():
    """musubi-tuner's RexLR after its warmup: min/max + (1 - min/max) * z / (alpha + beta z), z the share
    of the decay still to come; with min_value = min_lr / max_lr the multipliers are the same."""
    settings = RexFloor.settings(num_training_steps=60, num_warmup_steps=0, min_value=0.25, rex_alpha=0.3, rex_beta=0.5)
    curve = RexFloor.curve(settings)
    for step in range(60):
        z = (60 - step % 60) / 60  # RexLR's rex_z
        assert curve(step) == pytest.approx(0.25 + 0.75 * (z / (0.3 + 0.5 * z)), rel=1e-15)


@pytest.mark.skipif(MUSUBI_TUNER_DIR is None or not (MUSUBI_TUNER_DIR / "src" / "musubi_tuner" / "modules" / "lr_schedulers.py").is_file(), reason="needs MUSUBI_TUNER_DIR with RexLR (v0.2.11 and later)")
def test_the_same_lrs_as_musubi_tuners_own_rex_after_its_warmup():
    import torch

    sys.path.insert(0, str(MUSUBI_TUNER_DIR / "src"))
    from musubi_tuner.modules.lr_schedulers import RexLR

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-4)
    theirs = RexLR(optimizer, max_lr=1e-4, min_lr=2e-5, num_steps=50, num_warmup_steps=0)
    lrs = lr_trace(theirs, optimizer, 50)
    curve = RexFloor.curve(RexFloor.settings(num_training_steps=50, num_warmup_steps=0, min_value=0.2))
    for step in range(1, 50):  # RexLR's step 0 is its own (min_lr: its "avoid spiking" branch)
        assert lrs[step][0] == pytest.approx(1e-4 * curve(step), rel=1e-12)


def test_restart_controls_shape_each_cycle_as_for_cosine():
    curve = RexFloor.curve(RexFloor.settings(num_training_steps=110, num_warmup_steps=10, min_value=0.2, num_cycles=2, cycle_decay=0.5, restart_warmup_steps=10))
    assert curve(10) == 1.0 and curve(59) == pytest.approx(0.2 + 0.8 * rex(1 / 50), rel=1e-15)  # cycle 1: 50 steps
    assert curve(60) == pytest.approx(0.2) and curve(65) == pytest.approx(0.2 + 0.3 * 5 / 10)  # ramp from the floor to 0.5
    assert curve(70) == pytest.approx(0.5) and curve(109) == pytest.approx(0.2 + 0.3 * rex(1 / 40), rel=1e-15)


def test_a_real_optimizer_and_a_resume_after_the_restart():
    """Two param groups at their own LRs, 2 cycles of 40; saved at step 50 (after the restart),
    a new scheduler resumes and the LRs go on bit for bit."""
    kwargs = dict(num_training_steps=84, num_warmup_steps=4, min_value=0.4, num_cycles=2)
    optimizer = two_group_optimizer()
    scheduler = RexFloor(optimizer, **kwargs)
    curve = RexFloor.curve(RexFloor.settings(**kwargs))
    trace = lr_trace(scheduler, optimizer, 84)
    for step, (unet, text_encoder) in enumerate(trace):
        assert (unet, text_encoder) == (pytest.approx(1e-3 * curve(step), rel=1e-15), pytest.approx(5e-4 * curve(step), rel=1e-15))
    resumed, original = resumed_and_original(RexFloor, kwargs, 50, 34)
    assert resumed == original


def test_flags_toml_and_the_hook_form_through_sd_scripts(sd_parse, train_util, tmp_path):
    from sdsched_plugin.schedule import arguments

    args = sd_parse(["--lr_scheduler=rex_floor", "--lr_scheduler_min_value=0.3", "--lr_scheduler_args", "rex_alpha=0.2", "rex_beta=0.8",
                     "--lr_scheduler_num_cycles=2", "--max_train_steps=50"])  # fmt: skip
    scheduler = train_util.get_scheduler_fix(args, two_group_optimizer(), 1)
    assert type(scheduler).__name__ == "RexFloor"
    assert {k: scheduler.sdsched[k] for k in ("rex_alpha", "rex_beta", "num_cycles", "min_value")} == {"rex_alpha": 0.2, "rex_beta": 0.8, "num_cycles": 2, "min_value": 0.3}
    config = tmp_path / "c.toml"
    config.write_text('lr_scheduler_type = "sdsched_plugin:rex_floor"\nlr_scheduler_args = ["min_value=0.5", "rex_beta=0.7"]\nmax_train_steps = 40\n')
    args = sd_parse(["--config_file", str(config)])
    hooked = train_util.get_scheduler_fix(args, two_group_optimizer(), 2)
    assert (type(hooked).__name__, hooked.sdsched["rex_beta"], hooked.sdsched["num_training_steps"]) == ("RexFloor", 0.7, 80)
    assert arguments.read_schedule(args, pure=True).cls is specs.RexFloorSpec  # the preview: no torch class


@pytest.mark.parametrize(
    "key_value, message",
    [("rex_alpha=0", "--lr_scheduler_args rex_alpha: got '0'; allowed: a number > 0"),
     ("rex_beta=-1", "--lr_scheduler_args rex_beta: got '-1'; allowed: a number >= 0")],  # fmt: skip
)
def test_bad_rex_settings_stop_before_training_with_one_line(key_value, message, tmp_path):
    argv = ["preview", "--lr_scheduler=rex_floor", "--lr_scheduler_min_value=0.3", "--max_train_steps=50", "--lr_scheduler_args", key_value]
    out = subprocess.run([sys.executable, "-m", "sdsched_plugin.cli", *argv], capture_output=True, text=True, env=host_env(PYTHONPATH=""), cwd=tmp_path, timeout=300)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert message in out.stderr.splitlines()[-1] and " / " in out.stderr.splitlines()[-1]


def test_the_preview_draws_it_without_torch(tmp_path):
    code = (
        "import sys, json, contextlib, io; from sdsched_plugin import cli\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out): cli.main(['preview', '--json', '--trace', '--lr_scheduler=rex_floor', '--lr_scheduler_min_value=0.3',"
        " '--max_train_steps=100', '--lr_warmup_steps=10'])\n"
        "print(json.dumps([json.loads(out.getvalue())['schedules'][0]['multipliers'], 'torch' in sys.modules]))"
    )
    env = {key: value for key, value in host_env(PYTHONPATH="").items() if key != "SD_SCRIPTS_DIR"}  # sdsched's own reading
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    multipliers, torch_loaded = json.loads(out.stdout)
    assert not torch_loaded
    curve = RexFloor.curve(RexFloor.settings(num_training_steps=100, num_warmup_steps=10, min_value=0.3))
    assert multipliers == [curve(step) for step in range(100)]


def test_rex_options_read_like_the_others():
    assert options.OPTIONS["rex_alpha"].read("0.25") == 0.25 and options.OPTIONS["rex_beta"].read(0) == 0.0


# --- plain rex (sd-scripts) and musubi-tuner's own rex -----------------------------------------


def test_plain_rex_is_rex_floor_at_floor_zero_unless_a_floor_is_given(sd_parse, train_util):
    from sdsched_plugin.schedulers import Rex

    args = sd_parse(["--lr_scheduler=rex", "--max_train_steps=40", "--lr_warmup_steps=4"])
    scheduler = train_util.get_scheduler_fix(args, two_group_optimizer(), 1)
    assert type(scheduler) is Rex and scheduler.sdsched["min_value"] == 0.0
    curve = Rex.curve(scheduler.sdsched)
    assert [curve(step) for step in range(4)] == [0, 0.25, 0.5, 0.75]
    for step in range(4, 40):
        assert curve(step) == pytest.approx(rex((36 - (step - 4)) / 36), rel=1e-15)
    floored = train_util.get_scheduler_fix(sd_parse(["--lr_scheduler=rex", "--lr_scheduler_min_value=0.3", "--max_train_steps=40"]), two_group_optimizer(), 1)
    assert floored.sdsched["min_value"] == 0.3 and Rex.curve(floored.sdsched)(39) == pytest.approx(0.3 + 0.7 * rex(1 / 40), rel=1e-15)


def musubi_rex_lrs(steps, warmup, ratio, lrs=(1e-4, 4e-4), **kwargs):
    """LRs per step of musubi-tuner's RexLR (the real one with MUSUBI_TUNER_DIR, else the stand-in's)."""
    import importlib

    import torch

    sys.path.insert(0, str((MUSUBI_TUNER_DIR / "src") if MUSUBI_TUNER_DIR is not None else MUSUBI_DIR))
    RexLR = importlib.import_module("musubi_tuner.modules.lr_schedulers").RexLR
    optimizer = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in lrs], lr=lrs[0])
    scheduler = RexLR(optimizer, max_lr=lrs[0], min_lr=lrs[0] * ratio, num_steps=steps, num_warmup_steps=warmup, **kwargs)
    return lr_trace(scheduler, optimizer, steps)


@pytest.mark.parametrize("warmup", [0, 1, 5])
def test_the_pure_mirror_of_musubi_tuners_rex_is_its_lrs_bit_for_bit(warmup):
    from sdsched_plugin.schedule import stock

    theirs = musubi_rex_lrs(30, warmup, 0.1, rex_alpha=0.2, rex_beta=0.7)
    lr = stock.musubi_rex(30, warmup, 1e-4, 0.1, 0.2, 0.7)
    assert [[lr(step, 1e-4), lr(step, 4e-4)] for step in range(30)] == theirs
    if warmup == 5:  # the warmup in absolute LRs: both groups the same, the second's own 4e-4 ignored
        assert theirs[2][0] == theirs[2][1] == pytest.approx(1e-5 + 9e-5 * 1 / 4)


def test_musubi_tuner_keeps_its_own_rex(musubi_modules_for_rex):
    parse, build = musubi_modules_for_rex
    scheduler, _ = build(parse(["--lr_scheduler", "rex", "--max_train_steps", "20", "--learning_rate", "1e-4"]))
    assert type(scheduler).__name__ == "RexLR"
    ours, _ = build(parse(["--lr_scheduler", "rex_floor", "--lr_scheduler_min_value", "0.3", "--max_train_steps", "20"]))
    assert type(ours).__name__ == "RexFloor"


@pytest.fixture
def musubi_modules_for_rex(monkeypatch):
    import importlib

    from conftest import MUSUBI_IS_NEW
    from sdsched_plugin.hosts import musubi

    if not MUSUBI_IS_NEW:
        pytest.skip("the v0.3 layout (its own rex since v0.2.11)")
    parser_common = importlib.import_module(musubi.PARSER_MODULE)
    trainer_base = importlib.import_module(musubi.TRAINER_MODULE)
    assert musubi.install()

    def parse(argv):
        monkeypatch.setattr(sys, "argv", ["wan_train_network.py", *argv])
        parser = parser_common.setup_parser_common()
        return parser_common.read_config_from_file(parser.parse_args(argv), parser)

    def build(args):
        class WanLikeTrainer(trainer_base.NetworkTrainer):
            def __init__(self):
                pass

        optimizer = two_group_optimizer()
        return WanLikeTrainer().get_lr_scheduler(args, optimizer, 1), optimizer

    return parse, build


def test_the_preview_of_a_musubi_command_draws_its_own_rex_and_says_how_it_warms_up(tmp_path):
    """A pasted musubi-tuner command with --lr_scheduler=rex: musubi-tuner's RexLR, step for step, and
    the line on its absolute warmup (and its step 0, which falls outside the warmup)."""
    script = tmp_path / "src" / "musubi_tuner" / "wan_train_network.py"
    script.parent.mkdir(parents=True)
    script.write_text("")
    argv = ["preview", "--json", "--trace", "--", "python", str(script), "--lr_scheduler", "rex", "--learning_rate", "1e-4",
            "--max_train_steps", "30", "--lr_warmup_steps", "5", "--lr_scheduler_min_lr_ratio", "0.1", "--lr_scheduler_args", "rex_alpha=0.2"]  # fmt: skip
    out = subprocess.run([sys.executable, "-m", "sdsched_plugin.cli", *argv], capture_output=True, text=True, env=host_env(PYTHONPATH=""), cwd=tmp_path, timeout=300)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    schedule = result["schedules"][0]
    assert schedule["label"] == "rex (musubi-tuner's own)" and result["groups"] == ["all"]
    theirs = musubi_rex_lrs(30, 5, 0.1, lrs=(1e-4,), rex_alpha=0.2)
    assert [1e-4 * m for m in schedule["multipliers"]] == pytest.approx([lrs[0] for lrs in theirs], rel=1e-15)
    assert any("musubi-tuner's rex warms up in absolute LRs" in warning for warning in result["warnings"])


def test_a_musubi_training_script_trains_rex_floor_and_keeps_its_own_rex():
    """The tiny script in the shape of a musubi-tuner trainer (the stand-in, or the real modules with
    MUSUBI_TUNER_DIR): rex_floor with restarts and warmup is ours, LR for LR; rex is musubi-tuner's
    RexLR, its LRs those of the preview's mirror (the second group's warmup in absolute LRs too)."""
    from conftest import MUSUBI_IS_NEW
    from sdsched_plugin.schedule import stock

    if not MUSUBI_IS_NEW:
        pytest.skip("the v0.3 layout (its own rex since v0.2.11)")
    common = ["--max_train_steps", "12", "--learning_rate", "1e-3", "--lr_warmup_steps", "3"]
    process, traces = run_driver(["--lr_scheduler", "rex_floor", "--lr_scheduler_min_value", "0.3", "--lr_scheduler_num_cycles", "2", *common],
                                 env=host_env(TINY_HOST="musubi"))  # fmt: skip
    assert process.returncode == 0, process.stderr[-3000:]
    curve = RexFloor.curve(RexFloor.settings(num_training_steps=12, num_warmup_steps=3, min_value=0.3, num_cycles=2))
    assert traces[0]["scheduler"] == "RexFloor"
    assert [step["lrs"] for step in traces[0]["trace"]] == [[1e-3 * curve(k), 5e-4 * curve(k)] for k in range(12)]
    process, traces = run_driver(["--lr_scheduler", "rex", *common], env=host_env(TINY_HOST="musubi"))
    assert process.returncode == 0 and traces[0]["scheduler"] == "RexLR", process.stderr[-3000:]
    lr = stock.musubi_rex(12, 3, 1e-3)
    logged = [lr_ for step in traces[0]["trace"] for lr_ in step["lrs"]]
    assert logged == pytest.approx([lr(k, base) for k in range(12) for base in (1e-3, 5e-4)], rel=1e-12)
    assert logged[2] == logged[3] == 1e-5  # the warmup's first step: min_lr for both groups
