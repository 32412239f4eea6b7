"""--lr_scheduler_cycle_epochs (sd-scripts #73): the cycle length in epochs, every restart on an
epoch's first update; the epoch's length from the counted run (preview) or the dataset group
(training, through the plugin's dataset hook), for epoch- and step-based runs alike."""

import json
import math
import subprocess
import sys

import pytest

from conftest import SD_SCRIPTS_DIR, host_env, resumed_and_original, run_driver
from sdsched_plugin.schedulers import CosineWithRestartsFloor, RexFloor


def cos_part(local, length):
    return 0.5 * (1 + math.cos(math.pi * local / length))


def curve(cls=CosineWithRestartsFloor, **kwargs):
    return cls.curve(cls.settings(**kwargs))


def test_restarts_fall_on_the_first_step_of_every_second_epoch():
    """7 steps per epoch, 5 epochs, cycles of 2 epochs: cycles [3, 14), [14, 28), [28, 35) — the
    first after the warmup, the last the epoch that is left, decaying to the floor."""
    settings = CosineWithRestartsFloor.settings(num_training_steps=35, num_warmup_steps=3, min_value=0.4, cycle_epochs=2, epoch_steps=7)
    assert settings["num_cycles"] == 3  # the count the epochs give
    c = CosineWithRestartsFloor.curve(settings)
    for start, end in ((3, 14), (14, 28), (28, 35)):
        for step in range(start, end):
            assert c(step) == pytest.approx(0.4 + 0.6 * cos_part(step - start, end - start), rel=1e-12)
    assert [c(step) for step in range(3)] == [0, 1 / 3, 2 / 3] and c(35) == 0.4


def test_growing_cycles_in_whole_epochs_and_rex_too():
    c = curve(RexFloor, num_training_steps=70, num_warmup_steps=0, min_value=0.2, cycle_epochs=1, cycle_mul=2, epoch_steps=10)
    restarts = [step for step in range(1, 70) if c(step) > c(step - 1) + 1e-9]
    assert restarts == [10, 30]  # cycles of 1, 2 and 4 epochs


def test_a_cycle_count_that_contradicts_the_epochs_names_both_flags():
    with pytest.raises(ValueError) as error:
        CosineWithRestartsFloor.settings(num_training_steps=35, min_value=0.4, cycle_epochs=2, epoch_steps=7, num_cycles=2)
    assert str(error.value).startswith(
        "--lr_scheduler_num_cycles: got 2; allowed: 3, the cycles that --lr_scheduler_cycle_epochs=2 gives over 5 epochs; or leave it out"
    )
    for agreeing in (1, 3, 5):  # sd-scripts' default, the count itself, the kohya_ss GUI's empty "LR # cycles" (the epochs)
        settings = CosineWithRestartsFloor.settings(num_training_steps=35, min_value=0.4, cycle_epochs=2, epoch_steps=7, num_cycles=agreeing)
        assert settings["num_cycles"] == 3


def preview(argv, tmp_path):
    return subprocess.run([sys.executable, "-m", "sdsched_plugin.cli", "preview", *argv], capture_output=True, text=True,
                          env=host_env(PYTHONPATH=""), cwd=tmp_path, timeout=300)  # fmt: skip


def test_the_preview_says_where_the_epochs_are_unknown_and_cures_the_warning(tmp_path):
    base = ["--lr_scheduler=cosine_with_restarts_floor", "--lr_scheduler_min_value=0.3", "--max_train_steps=100"]
    unknown = preview([*base, "--lr_scheduler_cycle_epochs=2"], tmp_path)
    assert unknown.returncode == 2 and unknown.stderr.splitlines()[-1].startswith(
        "sdsched preview: error: --lr_scheduler_cycle_epochs: got 2; allowed: a run whose epoch length is known"
    )
    inside = preview([*base, "--lr_scheduler_num_cycles=3", "--steps_per_epoch=30"], tmp_path)
    assert "--lr_scheduler_cycle_epochs=E puts every restart on an epoch's first step" in inside.stdout
    fixed = preview([*base, "--lr_scheduler_cycle_epochs=1", "--steps_per_epoch=30", "--json"], tmp_path)
    assert fixed.returncode == 0 and json.loads(fixed.stdout)["warnings"] == []


@pytest.mark.parametrize("run", [["--max_train_steps", "35"], ["--max_train_epochs", "5"]], ids=["steps", "epochs"])
def test_training_restarts_on_epochs_as_the_preview_shows(run, tmp_path):
    """The tiny script's dataset group of 7 batches (the dataset hook counts it) and the same flags in
    the preview with 7 steps per epoch: the same LR at every update, restarts at 14 and 28."""
    if SD_SCRIPTS_DIR is not None:
        pytest.skip("the stand-in's dataset group; a real checkout is checked by a real training")
    flags = ["--lr_scheduler", "cosine_with_restarts_floor", "--lr_scheduler_min_value", "0.4", "--lr_scheduler_cycle_epochs", "2",
             "--lr_warmup_steps", "3", "--learning_rate", "1e-4", *run]  # fmt: skip
    process, traces = run_driver([*flags, "--samples", "7"])
    assert process.returncode == 0, process.stderr[-3000:]
    shown = preview([*flags, "--steps_per_epoch=7", "--json", "--trace"], tmp_path)
    multipliers = json.loads(shown.stdout)["schedules"][0]["multipliers"]
    trace = traces[0]["trace"]
    assert len(trace) == 35 and [step["lrs"][0] for step in trace] == pytest.approx([1e-4 * m for m in multipliers], rel=1e-12)
    assert [s["step"] for s in trace if s["step"] and s["lrs"][0] > trace[s["step"] - 1]["lrs"][0] and s["step"] > 3] == [14, 28]


def test_a_resume_after_a_restart_goes_on_bit_for_bit():
    resumed, original = resumed_and_original(CosineWithRestartsFloor, dict(num_training_steps=35, num_warmup_steps=3, min_value=0.4, cycle_epochs=2, epoch_steps=7), 20, 15)
    assert resumed == original
