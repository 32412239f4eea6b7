"""Layer 4: the patch of sd-scripts' train_util, in process (stand-in or real checkout)."""

import logging
import math
import re
import types
from pathlib import Path

import pytest
import torch

from conftest import lr_trace, two_group_optimizer
from sdsched_plugin.hosts import sd_scripts
from sdsched_plugin.schedulers import CosineFloor, CosineWithRestartsFloor, LinearFloor, PolynomialFloor
from sdsched_plugin.schedule.cycles import PLAIN as PLAIN_RESTARTS

LR = 1e-3


def optimizer():
    return two_group_optimizer(LR, LR / 2)


def cosine(progress):
    return 0.5 * (1 + math.cos(math.pi * progress))


# ---------------------------------------------------------------- install / uninstall


def test_patch_is_installed_once_and_keeps_the_originals(train_util):
    assert sd_scripts.is_installed(train_util)
    patched = train_util.get_scheduler_fix
    assert sd_scripts.install(train_util) is True  # a second install (a .pth seen twice)
    assert train_util.get_scheduler_fix is patched
    assert not getattr(patched.__wrapped__, "sdsched_patched", False)  # one layer, not two
    assert patched.__wrapped__.__module__ == "library.train_util"


def test_uninstall_restores_and_is_idempotent(train_util):
    names = [patch.name for patch in sd_scripts.patches(train_util)]
    originals = {name: getattr(train_util, name).__wrapped__ for name in names}
    try:
        sd_scripts.uninstall()
        assert {name: getattr(train_util, name) for name in names} == originals
        sd_scripts.uninstall()  # nothing left to undo
        assert {name: getattr(train_util, name) for name in names} == originals
    finally:
        sd_scripts.install(train_util)
    assert sd_scripts.is_installed(train_util)


def test_a_module_that_is_not_sd_scripts_is_left_alone(caplog):
    impostor = types.ModuleType("library.train_util")
    impostor.get_scheduler_fix = lambda args, optimizer: None  # wrong signature
    impostor.add_optimizer_arguments = lambda parser: None
    impostor.read_config_from_file = lambda args, parser: args
    before = dict(vars(impostor))
    with caplog.at_level(logging.WARNING, logger="sdsched_plugin"):
        assert sd_scripts.install(impostor) is False
    assert dict(vars(impostor)) == before
    assert "not sd-scripts' train_util" in caplog.text and "get_scheduler_fix" in caplog.text


def test_parser_gets_the_min_value_flag_with_bilingual_help(train_util):
    import argparse

    parser = argparse.ArgumentParser()
    train_util.add_optimizer_arguments(parser)
    action = parser._option_string_actions["--lr_scheduler_min_value"]
    assert action.default is None and " / " in action.help and "下限" in action.help
    assert "cosine_with_restarts_floor" in parser._option_string_actions["--lr_scheduler"].help


# ---------------------------------------------------------------- building the schedules


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--lr_scheduler", "cosine_floor"], lambda p: 0.5 + 0.5 * cosine(p)),
        (["--lr_scheduler", "linear_floor"], lambda p: 0.5 + 0.5 * (1 - p)),
        (["--lr_scheduler", "polynomial_floor", "--lr_scheduler_power", "2"], lambda p: 0.5 + 0.5 * (1 - p) ** 2),
        (
            ["--lr_scheduler", "cosine_with_restarts_floor", "--lr_scheduler_num_cycles", "2"],
            lambda p: 0.5 + 0.5 * cosine((2 * p) % 1.0),
        ),
        # the min value with a stock decaying name floors it too: never ignored
        (["--lr_scheduler", "cosine"], lambda p: 0.5 + 0.5 * cosine(p)),
        (["--lr_scheduler", "cosine_with_restarts", "--lr_scheduler_num_cycles", "2"], lambda p: 0.5 + 0.5 * cosine((2 * p) % 1.0)),
    ],
)
@pytest.mark.parametrize("num_processes", [1, 2])
def test_get_scheduler_fix_builds_the_floored_schedule(sd_parse, train_util, argv, expected, num_processes):
    args = sd_parse([*argv, "--lr_scheduler_min_value", "0.5", "--max_train_steps", "40", "--lr_warmup_steps", "0.1"])
    opt = optimizer()
    scheduler = train_util.get_scheduler_fix(args, opt, num_processes)
    total, warmup = 40 * num_processes, int(0.1 * 40 * num_processes)  # as sd-scripts scales them
    assert scheduler.sdsched["num_training_steps"] == total and scheduler.sdsched["num_warmup_steps"] == warmup
    lrs = lr_trace(scheduler, opt, total + 3)
    for step, (unet, te) in enumerate(lrs):
        if step < warmup:
            want = step / warmup
        elif step >= total:
            want = 0.5
        else:
            want = expected((step - warmup) / (total - warmup))
        assert unet == pytest.approx(LR * want, rel=1e-9), step
        assert te == pytest.approx(LR / 2 * want, rel=1e-9), step
    assert lrs[total][0] == pytest.approx(LR * 0.5)  # the last step sits on the floor, not 0


@pytest.mark.parametrize("name", ["linear", "cosine", "cosine_with_restarts", "polynomial"])
def test_zero_floor_matches_sd_scripts_own_schedule_step_by_step(sd_parse, train_util, name):
    common = ["--max_train_steps", "30", "--lr_warmup_steps", "4", "--lr_scheduler_num_cycles", "3"]
    ours = train_util.get_scheduler_fix(sd_parse(["--lr_scheduler", name + "_floor", "--lr_scheduler_min_value", "0", *common]), o1 := optimizer(), 1)
    stock = train_util.get_scheduler_fix(sd_parse(["--lr_scheduler", name, *common]), o2 := optimizer(), 1)
    assert type(ours).__name__.endswith("Floor") and type(stock) is torch.optim.lr_scheduler.LambdaLR
    if name == "polynomial":  # stock polynomial ends at lr_end=1e-7 (transformers' default), ours at the floor 0
        flat = lambda lrs: [lr for step in lrs for lr in step]  # noqa: E731
        assert flat(lr_trace(ours, o1, 30)) == pytest.approx(flat(lr_trace(stock, o2, 30)), abs=2e-7)
    else:
        assert lr_trace(ours, o1, 31) == lr_trace(stock, o2, 31)


@pytest.mark.parametrize(
    "argv, stock_type",
    [
        (["--lr_scheduler", "constant"], torch.optim.lr_scheduler.LambdaLR),
        (["--lr_scheduler", "constant_with_warmup", "--lr_warmup_steps", "3"], torch.optim.lr_scheduler.LambdaLR),
        (["--lr_scheduler", "cosine"], torch.optim.lr_scheduler.LambdaLR),
        (["--lr_scheduler", "piecewise_constant", "--lr_scheduler_args", "step_rules='1:5,0.1'"], torch.optim.lr_scheduler.LambdaLR),
        (["--lr_scheduler_type", "CosineAnnealingLR", "--lr_scheduler_args", "T_max=10"], torch.optim.lr_scheduler.CosineAnnealingLR),
        (["--lr_scheduler", "cosine_floor", "--optimizer_type", "AdamWScheduleFree"], None),
    ],
)
def test_what_is_not_ours_goes_to_sd_scripts_untouched(sd_parse, train_util, argv, stock_type):
    args = sd_parse([*argv, "--max_train_steps", "20"])
    ours_opt, orig_opt = optimizer(), optimizer()
    through_patch = train_util.get_scheduler_fix(args, ours_opt, 1)
    direct = train_util.get_scheduler_fix.__wrapped__(args, orig_opt, 1)
    assert type(through_patch).__qualname__ == type(direct).__qualname__  # the dummy's class is made per call
    if stock_type is None:  # schedule-free: sd-scripts' dummy, which never changes the LR
        assert type(through_patch).__name__ == "DummyScheduler"
    else:
        assert type(through_patch) is stock_type
    assert lr_trace(through_patch, ours_opt, 21) == lr_trace(direct, orig_opt, 21)


def test_min_value_with_a_schedule_without_decay_warns_once_naming_the_flag(sd_parse, train_util, caplog):
    with caplog.at_level(logging.WARNING, logger="sdsched_plugin"):
        args = sd_parse(["--lr_scheduler", "constant_with_warmup", "--lr_scheduler_min_value", "0.4", "--lr_warmup_steps", "2"])
        scheduler = train_util.get_scheduler_fix(args, optimizer(), 1)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "--lr_scheduler_min_value=0.4 has no effect with --lr_scheduler=constant_with_warmup" in warnings[0]
    assert type(scheduler) is torch.optim.lr_scheduler.LambdaLR


def test_floor_name_without_min_value_takes_sd_scripts_min_lr_ratio(sd_parse, train_util):
    args = sd_parse(["--lr_scheduler", "linear_floor", "--lr_scheduler_min_lr_ratio", "0.25", "--max_train_steps", "10"])
    scheduler = train_util.get_scheduler_fix(args, optimizer(), 1)
    assert isinstance(scheduler, LinearFloor) and scheduler.sdsched["min_value"] == 0.25


# ---------------------------------------------------------------- the custom-scheduler hook


def test_hook_form_takes_steps_from_sd_scripts_and_its_args_override_the_flags(sd_parse, train_util):
    args = sd_parse(
        [
            "--lr_scheduler_type", "sdsched_plugin:cosine_with_restarts_floor",
            "--lr_scheduler_args", "min_value=0.5", "num_cycles=2",
            "--lr_scheduler_min_value", "0.3", "--lr_scheduler_num_cycles", "5",
            "--max_train_steps", "50", "--lr_warmup_steps", "10",
        ]
    )  # fmt: skip
    opt = optimizer()
    scheduler = train_util.get_scheduler_fix(args, opt, 2)  # warmup is allowed here, unlike sd-scripts' custom types
    assert isinstance(scheduler, CosineWithRestartsFloor)
    assert scheduler.sdsched == {
        "name": "cosine_with_restarts_floor", **PLAIN_RESTARTS,
        "min_value": 0.5,
        "num_cycles": 2,
        "num_training_steps": 100,
        "num_warmup_steps": 10,
    }
    lrs = [u for u, _ in lr_trace(scheduler, opt, 101)]
    assert lrs[5] == pytest.approx(LR * 0.5) and lrs[10] == pytest.approx(LR)
    assert lrs[55] == pytest.approx(LR) and lrs[100] == pytest.approx(LR * 0.5)


def test_stock_sd_scripts_can_use_the_classes_by_dotted_path(sd_parse, train_util):
    """With the patch not active, sd-scripts imports sdsched_plugin.<Class> itself."""
    args = sd_parse(
        [
            "--lr_scheduler_type", "sdsched_plugin.PolynomialFloor",
            "--lr_scheduler_args", "num_training_steps=20", "num_warmup_steps=4", "min_value=0.2", "power=2.0",
        ]
    )  # fmt: skip
    opt = optimizer()
    scheduler = train_util.get_scheduler_fix.__wrapped__(args, opt, 1)  # the original, unpatched
    assert isinstance(scheduler, PolynomialFloor)
    lrs = [u for u, _ in lr_trace(scheduler, opt, 21)]
    assert lrs[2] == pytest.approx(LR * 0.5)
    assert lrs[12] == pytest.approx(LR * (0.2 + 0.8 * 0.5**2))
    assert lrs[20] == pytest.approx(LR * 0.2)


# ---------------------------------------------------------------- TOML


def write_toml(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_toml_values_are_coerced_like_the_command_line(sd_parse, train_util, tmp_path):
    config = write_toml(
        tmp_path,
        '[optimizer_arguments]\nlr_scheduler = "cosine_with_restarts_floor"\nlr_scheduler_min_value = "0.5"\n'
        'lr_scheduler_num_cycles = "2"\nlr_warmup_steps = "10%"\n\n[training_arguments]\nmax_train_steps = 100\n',
    )
    args = sd_parse(["--config_file", config])
    assert (args.lr_scheduler_min_value, args.lr_scheduler_num_cycles, args.lr_warmup_steps) == (0.5, 2, 0.1)
    scheduler = train_util.get_scheduler_fix(args, optimizer(), 1)
    assert scheduler.sdsched["num_warmup_steps"] == 10 and scheduler.sdsched["min_value"] == 0.5


def test_command_line_overrides_toml(sd_parse, train_util, tmp_path):
    config = write_toml(tmp_path, 'lr_scheduler = "cosine_floor"\nlr_scheduler_min_value = 0\nmax_train_steps = 10\n')
    args = sd_parse(["--config_file", config, "--lr_scheduler_min_value", "0.3"])
    assert train_util.get_scheduler_fix(args, optimizer(), 1).sdsched["min_value"] == 0.3
    args = sd_parse(["--config_file", config])
    assert args.lr_scheduler_min_value == 0.0 and isinstance(args.lr_scheduler_min_value, float)
    assert isinstance(train_util.get_scheduler_fix(args, optimizer(), 1), CosineFloor)


def test_kohya_gui_config_with_the_floor_in_its_extra_fields(sd_parse, train_util, tmp_path):
    gui_config = (Path(__file__).parent / "data" / "kohya_gui_lora.toml").read_text()
    # "Additional parameters" box: on the command line, after --config_file
    args = sd_parse(["--config_file", write_toml(tmp_path, gui_config), "--lr_scheduler_min_value=0.5"])
    scheduler = train_util.get_scheduler_fix(args, optimizer(), 1)
    assert scheduler.sdsched == {"name": "cosine_with_restarts_floor", **PLAIN_RESTARTS, "min_value": 0.5, "num_cycles": 3, "num_warmup_steps": 125, "num_training_steps": 1250}
    # "LR scheduler extra arguments" box: a list in the TOML
    config = write_toml(tmp_path, gui_config.replace("lr_scheduler_args = []", 'lr_scheduler_args = [ "min_value=0.4",]'))
    scheduler = train_util.get_scheduler_fix(sd_parse(["--config_file", config]), optimizer(), 1)
    assert isinstance(scheduler, CosineWithRestartsFloor) and scheduler.sdsched["min_value"] == 0.4


# ---------------------------------------------------------------- bad input, before the model loads

BAD = [
    (["--lr_scheduler", "cosine_floor", "--lr_scheduler_min_value", "1.5"], "--lr_scheduler_min_value", "'1.5'"),
    (["--lr_scheduler", "cosine_floor", "--lr_scheduler_min_value", "nan"], "--lr_scheduler_min_value", "'nan'"),
    (["--lr_scheduler", "cosine_floor", "--lr_scheduler_min_value", "half"], "--lr_scheduler_min_value", "'half'"),
    (["--lr_scheduler", "cosine_floor"], "--lr_scheduler_min_value", "cosine_floor needs a floor"),
    (["--lr_scheduler_type", "sdsched_plugin:cosine_flor"], "--lr_scheduler_type", "Did you mean: cosine_floor"),
    (["--lr_scheduler", "cosine_floor", "--lr_scheduler_min_value", "0.5", "--lr_scheduler_args", "min_value"], "--lr_scheduler_args", "min_value, num_training_steps, num_warmup_steps"),
    (["--lr_scheduler", "cosine_floor", "--lr_scheduler_min_value", "0.5", "--lr_scheduler_args", "gamma=0.5"], "--lr_scheduler_args", "'gamma=0.5'"),
    (["--lr_scheduler", "cosine_with_restarts_floor", "--lr_scheduler_min_value", "0.5", "--lr_scheduler_num_cycles", "0"], "--lr_scheduler_num_cycles", "got 0"),
    (["--lr_scheduler", "cosine_floor", "--lr_scheduler_min_value", "0.5", "--max_train_steps", "10", "--lr_warmup_steps", "10"], "--lr_warmup_steps", "(10)"),
]


@pytest.mark.parametrize("argv, flag, detail", BAD)
def test_bad_input_exits_at_parse_time_naming_flag_and_value_in_both_languages(sd_parse, argv, flag, detail, capsys):
    with pytest.raises(SystemExit) as caught:
        sd_parse(argv)
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and detail in err, err
    assert any("\u3040" <= ch <= "\u30ff" or "\u4e00" <= ch <= "\u9fff" for ch in err), "no Japanese in: " + err


@pytest.mark.parametrize(
    "toml_text, detail",
    [
        ('lr_scheduler = "cosine_floor"\nlr_scheduler_min_value = "abc"\n', "--lr_scheduler_min_value: got 'abc'"),
        ('lr_scheduler = "cosine_floor"\nlr_scheduler_min_value = nan\n', "--lr_scheduler_min_value: got nan"),
        ('lr_scheduler = "cosine_floor"\nlr_scheduler_min_value = true\n', "--lr_scheduler_min_value: got True"),
        ('lr_scheduler = "cosine_with_restarts_floor"\nlr_scheduler_min_value = 0.5\nlr_scheduler_num_cycles = 0\n', "--lr_scheduler_num_cycles: got 0"),
        ('lr_scheduler = "cosine_floor"\nlr_scheduler_min_value = 0.5\nlr_warmup_steps = "lots"\n', "--lr_warmup_steps: got 'lots'"),
    ],
)
def test_bad_toml_values_exit_like_bad_flags(sd_parse, tmp_path, toml_text, detail, capsys):
    with pytest.raises(SystemExit) as caught:
        sd_parse(["--config_file", write_toml(tmp_path, toml_text)])
    assert caught.value.code == 2
    assert detail in capsys.readouterr().err


def test_warmup_past_an_epoch_based_total_fails_when_sd_scripts_knows_the_total(sd_parse, train_util, capsys):
    """Where no dataset hook saw the run (it catches this before the model), the scheduler's own check
    is the last: one line, exit 2, no traceback."""
    args = sd_parse(["--lr_scheduler", "cosine_floor", "--lr_scheduler_min_value", "0.5", "--max_train_epochs", "2", "--lr_warmup_steps", "30"])
    args.max_train_steps = 20  # what the script computes from the epochs once the dataset is loaded
    with pytest.raises(SystemExit) as stop:
        train_util.get_scheduler_fix(args, optimizer(), 1)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and re.search(r"error: --lr_warmup_steps: got 30.*\(20\)", err)
