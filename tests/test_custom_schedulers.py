"""Custom --lr_scheduler_type classes (torch's CosineAnnealingLR & co., as sd-scripts and the kohya_ss
GUI let a user name them): previewed exactly, and their period checked against the run, in the
preview and in training (a warning), with a warmup refused before the model."""

import json
import subprocess
import sys

import pytest
import torch

from conftest import SD_SCRIPTS_DIR, host_env, run_driver
from sdsched_plugin.schedule import custom


def preview(argv, tmp_path):
    return subprocess.run([sys.executable, "-m", "sdsched_plugin.cli", "preview", *argv], capture_output=True, text=True,
                          env=host_env(PYTHONPATH=""), cwd=tmp_path, timeout=300)  # fmt: skip


def stepped(cls, kwargs, steps, every):
    """The LR of a torch class stepped ``every`` times per update (accelerate: once per process)."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = cls(optimizer, **kwargs)
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        for _ in range(every):
            optimizer.step()
            scheduler.step()
    return lrs


CASES = [
    ("CosineAnnealingLR", {"T_max": 40, "eta_min": 0.1}),
    ("CosineAnnealingWarmRestarts", {"T_0": 15, "T_mult": 2}),
    ("OneCycleLR", {"max_lr": 1.0, "total_steps": 80}),
    ("LinearLR", {"start_factor": 1.0, "end_factor": 0.2, "total_iters": 30}),
    ("StepLR", {"step_size": 10, "gamma": 0.5}),
]


@pytest.mark.parametrize("name, kwargs", CASES, ids=[name for name, _ in CASES])
@pytest.mark.parametrize("processes", [1, 2])
def test_the_preview_is_the_torch_class_stepped_as_training_steps_it(name, kwargs, processes, tmp_path):
    args = [f"{key}={value}" for key, value in kwargs.items()]
    out = preview(["--lr_scheduler_type", name, "--lr_scheduler_args", *args, "--max_train_steps=40", f"--num_processes={processes}",
                   "--learning_rate=1", "--json", "--trace"], tmp_path)  # fmt: skip
    assert out.returncode == 0, out.stderr
    schedule = json.loads(out.stdout)["schedules"][0]
    assert schedule["settings"] == {"class": name, **kwargs}
    expected = stepped(getattr(torch.optim.lr_scheduler, name), kwargs, 40, processes)
    assert schedule["multipliers"] == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_a_period_that_is_not_the_run_is_said_with_the_number_to_use(tmp_path):
    wrong = preview(["--lr_scheduler_type=CosineAnnealingLR", "--lr_scheduler_args", "T_max=10", "--max_train_steps=3000", "--json"], tmp_path)
    assert json.loads(wrong.stdout)["warnings"] == [
        "--lr_scheduler_type=CosineAnnealingLR: T_max=10 but the run has 3000 scheduler steps (3000 updates): the LR falls to eta_min at"
        " T_max steps and climbs back, a cycle every 2 x T_max (about 150 cycles); use T_max=3000 / T_max=10 は実行のスケジューラの"
        "ステップ数 3000 と合っていません。T_max=3000 にしてください"
    ]
    two = preview(["--lr_scheduler_type=OneCycleLR", "--lr_scheduler_args", "max_lr=1e-4", "total_steps=100", "--max_train_steps=100",
                   "--num_processes=2", "--json"], tmp_path)  # fmt: skip
    assert "use total_steps=200" in json.loads(two.stdout)["warnings"][0] and "(100 updates x 2 processes)" in json.loads(two.stdout)["warnings"][0]
    right = preview(["--lr_scheduler_type=CosineAnnealingLR", "--lr_scheduler_args", "T_max=3000", "--max_train_steps=3000", "--json"], tmp_path)
    assert json.loads(right.stdout)["warnings"] == []


def test_training_warns_once_and_refuses_a_warmup_before_the_model(tmp_path):
    if SD_SCRIPTS_DIR is not None:
        pytest.skip("the stand-in's get_scheduler_fix; the real one is checked by a real training")
    flags = ["--lr_scheduler_type", "CosineAnnealingLR", "--lr_scheduler_args", "T_max=5", "--max_train_steps", "20", "--learning_rate", "1"]
    process, traces = run_driver(flags)
    assert process.returncode == 0, process.stderr[-3000:]
    assert process.stderr.count("T_max=5 but the run has 20 scheduler steps") == 1
    shown = preview([*flags, "--json", "--trace"], tmp_path)
    assert [step["lrs"][0] for step in traces[0]["trace"]] == pytest.approx(json.loads(shown.stdout)["schedules"][0]["multipliers"], rel=1e-12)
    refused, _ = run_driver([*flags, "--lr_warmup_steps", "3"])
    assert refused.returncode == 2 and "MODEL LOADING" not in refused.stdout and "Traceback" not in refused.stderr
    assert "--lr_warmup_steps: got 3; allowed: 0 with --lr_scheduler_type=CosineAnnealingLR" in refused.stderr.splitlines()[-1]


def test_arguments_are_read_as_sd_scripts_reads_them():
    assert custom.kwargs_of(["T_max=10", "eta_min=1e-6", "verbose=False"]) == {"T_max": 10, "eta_min": 1e-6, "verbose": False}
    with pytest.raises(ValueError, match="--lr_scheduler_args: got 'T_max'"):
        custom.kwargs_of(["T_max"])


def test_absolute_lrs_in_the_arguments_give_each_group_its_own_multipliers(tmp_path):
    """eta_min is an LR, not a ratio: with a text encoder at 5e-5 and a U-Net at 1e-4 the two groups'
    multipliers differ, and --json --trace gives each, equal to torch stepping both groups."""
    out = preview(["--lr_scheduler_type=CosineAnnealingLR", "--lr_scheduler_args", "T_max=30", "eta_min=1e-5", "--max_train_steps=30",
                   "--unet_lr=1e-4", "--text_encoder_lr=5e-5", "--network_module=networks.lora", "--json", "--trace"], tmp_path)  # fmt: skip
    result = json.loads(out.stdout)
    groups = result["schedules"][0]["group_multipliers"]
    optimizer = torch.optim.SGD([{"params": [torch.nn.Parameter(torch.zeros(1))], "lr": lr} for lr in result["lrs"]], lr=1.0)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=30, eta_min=1e-5)
    for step in range(30):
        for group, lr, multipliers in zip(optimizer.param_groups, result["lrs"], groups):
            assert group["lr"] == pytest.approx(lr * multipliers[step], rel=1e-12)
        optimizer.step()
        scheduler.step()
    assert groups[0] != groups[1] and result["schedules"][0]["multipliers"] == groups[0]
    assert any(warning.startswith("CosineAnnealingLR takes absolute LRs (eta_min)") for warning in result["warnings"])
