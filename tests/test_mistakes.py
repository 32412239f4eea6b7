"""Every mistake caught before the model loads: exit 2 with one bilingual message naming the
flag, the value and what is allowed; never a traceback, never silently ignored.

Real subprocesses (the tiny sd-scripts-shaped training script, ``sdsched``) where the message
or the exit status is the point; the in-process ``sd_parse`` where the reading is.
"""

import logging
import subprocess
import sys

import pytest

from conftest import DRIVER, SD_SCRIPTS_DIR, clip_tokenizer_cache, host_env

COSINE_FLOOR = ["--lr_scheduler", "cosine_floor", "--lr_scheduler_min_value", "0.5"]


def train(argv, tmp_path, config: str | None = None):
    """The tiny training script with the real plugin (.pth) in a new process."""
    if config is not None:
        path = tmp_path / "config.toml"
        path.write_text(config)
        argv = [*argv, "--config_file", str(path)]
    command = [sys.executable, str(DRIVER), "--trace_dir", str(tmp_path), *argv]
    return subprocess.run(command, capture_output=True, text=True, env=host_env(), timeout=300)


def assert_stopped_before_the_model(process, *details):
    assert process.returncode == 2, process.stderr[-3000:]
    assert "MODEL LOADING" not in process.stdout
    assert "Traceback" not in process.stderr, process.stderr[-3000:]
    for detail in details:
        assert detail in process.stderr, process.stderr[-3000:]


def exits_2(sd_parse, argv, capsys, tmp_path, config: str | None = None) -> str:
    """Parse like a training script in this process; the bilingual message it exits 2 with."""
    if config is not None:
        path = tmp_path / "config.toml"
        path.write_text(config)
        argv = [*argv, "--config_file", str(path)]
    with pytest.raises(SystemExit) as caught:
        sd_parse(argv)
    assert caught.value.code == 2
    return capsys.readouterr().err


BAD_NAMES = [
    # 1: an unknown name of any kind, with the closest names of ours and sd-scripts'
    (["--lr_scheduler", "cosin_floor", "--lr_scheduler_min_value", "0.5"], ["--lr_scheduler", "'cosin_floor'", "cosine_floor"]),
    (["--lr_scheduler", "cosine_with_restart"], ["--lr_scheduler", "Did you mean: cosine_with_restarts", "スケジューラ"]),
    (["--lr_scheduler", "cosine_with_min_l"], ["Did you mean: cosine_with_min_lr"]),
    # 2: our name as a custom type without the prefix
    (["--lr_scheduler_type", "cosine_floor"], ["--lr_scheduler_type", "sdsched_plugin:cosine_floor"]),
]


@pytest.mark.parametrize("argv, details", BAD_NAMES)
def test_bad_names_stop_when_the_arguments_are_read(sd_parse, argv, details, capsys, tmp_path):
    err = exits_2(sd_parse, ["--max_train_steps", "10", *argv], capsys, tmp_path)
    assert all(detail in err for detail in details), err
    assert "has no effect" not in err  # no misleading warning before the error


BAD_TOML = [
    # 5: a float warmup is a ratio in sd-scripts; 1.0 would be the whole run
    ('lr_scheduler = "cosine_floor"\nlr_scheduler_min_value = 0.5\nlr_warmup_steps = 1.0\n', ["--lr_warmup_steps", "got 1.0", "a float is a ratio of the run below 1", "integer", "比率"]),
    ('lr_scheduler = "cosine_floor"\nlr_scheduler_min_value = 0.5\nlr_warmup_steps = 2.5\n', ["--lr_warmup_steps", "got 2.5"]),
    # 6: a TOML number as the name
    ("lr_scheduler = 5\nlr_scheduler_min_value = 0.5\n", ["--lr_scheduler: got 5", "a schedule name in quotes"]),
    ("lr_scheduler_type = 5\n", ["--lr_scheduler_type: got 5"]),
    # 8: the args as a string or a table (sd-scripts flattens tables): show the list form
    ('lr_scheduler = "cosine_floor"\nlr_scheduler_args = "min_value=0.5"\n', ["--lr_scheduler_args", 'lr_scheduler_args = ["min_value=0.5"]']),
    ('lr_scheduler = "cosine_floor"\n[lr_scheduler_args]\nmin_value = 0.5\n', ["--lr_scheduler_args", 'lr_scheduler_args = ["min_value=0.5"]', "(not a table)"]),
    ('lr_scheduler = "cosine_floor"\nlr_scheduler_args = {min_value = 0.5}\n', ["--lr_scheduler_args", 'lr_scheduler_args = ["min_value=0.5"]']),
]


@pytest.mark.parametrize("toml_text, details", BAD_TOML)
def test_bad_toml_values_stop_when_the_arguments_are_read(sd_parse, toml_text, details, capsys, tmp_path):
    err = exits_2(sd_parse, ["--max_train_steps", "10"], capsys, tmp_path, config=toml_text)
    assert all(detail in err for detail in details), err


RESTARTS = ["--lr_scheduler", "cosine_with_restarts_floor", "--lr_scheduler_min_value", "0.5"]


@pytest.mark.parametrize(
    "argv, config, details",
    [
        # 3: more cycles than decaying steps with plain restarts: the most that fits is named
        ([*RESTARTS, "--max_train_steps", "12", "--lr_scheduler_num_cycles", "20"], None, ["--lr_scheduler_num_cycles: got 20", "at most 12"]),
        ([*RESTARTS, "--max_train_steps", "14", "--lr_warmup_steps", "2"], "lr_scheduler_num_cycles = 100000000000000000000\n", ["--lr_scheduler_num_cycles", "at most 12"]),
        # 4: cycle_mul ** num_cycles overflowing a float
        ([*RESTARTS, "--max_train_steps", "3000", "--lr_scheduler_cycle_mul", "2", "--lr_scheduler_num_cycles", "1100"], None, ["--lr_scheduler_cycle_mul: got 2.0", "fits in a float"]),
        ([*RESTARTS, "--max_train_steps", "3000", "--lr_scheduler_num_cycles", "2"], "lr_scheduler_cycle_mul = 1e300\n", ["--lr_scheduler_cycle_mul: got 1e+300"]),
    ],
)
def test_restart_counts_that_cannot_work_are_refused(sd_parse, argv, config, details, capsys, tmp_path):
    err = exits_2(sd_parse, argv, capsys, tmp_path, config=config)
    assert all(detail in err for detail in details), err


def test_the_preview_warns_about_sd_scripts_own_restarts_that_never_decay(capsys):
    from sdsched_plugin import cli

    assert cli.main(["preview", "--lr_scheduler", "cosine_with_restarts", "--max_train_steps", "12", "--lr_scheduler_num_cycles", "20"]) == 0
    assert "20 cycles in 12 decaying steps" in capsys.readouterr().out


def test_a_floor_name_without_a_floor_says_it_is_missing(sd_parse, capsys, tmp_path):
    err = exits_2(sd_parse, ["--max_train_steps", "10", "--lr_scheduler", "linear_floor"], capsys, tmp_path)
    message = err.strip().splitlines()[-1]
    assert "--lr_scheduler_min_value: missing" in message and "linear_floor needs a floor" in message and "指定がありません" in message
    assert "None" not in message


def test_in_a_real_training_process_a_bad_name_stops_before_the_model(tmp_path):
    process = train(["--max_train_steps", "10", "--lr_scheduler", "cosin_floor", "--lr_scheduler_min_value", "0.5"], tmp_path)
    assert_stopped_before_the_model(process, "--lr_scheduler", "'cosin_floor'", "Did you mean: cosine_floor")
    assert "has no effect" not in process.stderr


def test_in_a_real_training_process_a_bad_toml_value_stops_before_the_model(tmp_path):
    process = train(["--max_train_steps", "10"], tmp_path, config='lr_scheduler = "cosine_floor"\nlr_scheduler_args = "min_value=0.5"\n')
    assert_stopped_before_the_model(process, 'lr_scheduler_args = ["min_value=0.5"]')


@pytest.mark.skipif(SD_SCRIPTS_DIR is not None, reason="a real checkout is checked with its real train_network.py below")
def test_epoch_based_warmup_as_long_as_the_run_stops_before_the_model(tmp_path):
    # 4 batches per epoch, 2 epochs: 8 steps; sd-scripts knows that once its dataset group exists
    process = train([*COSINE_FLOOR, "--max_train_epochs", "2", "--samples", "4", "--lr_warmup_steps", "100"], tmp_path)
    assert_stopped_before_the_model(process, "--lr_warmup_steps: got 100", "(8)", "ウォームアップ")


@pytest.mark.skipif(SD_SCRIPTS_DIR is None, reason="needs SD_SCRIPTS_DIR (a real sd-scripts checkout)")
def test_real_train_network_checks_an_epoch_run_before_loading_the_model(tmp_path):
    from test_preview_run import DATASET, kohya_dataset

    img = kohya_dataset(tmp_path)  # 18 batches per epoch, 2 epochs: 36 steps
    tokenizer = clip_tokenizer_cache(tmp_path / "tokenizer")
    command = [sys.executable, str(SD_SCRIPTS_DIR / "train_network.py"), "--pretrained_model_name_or_path=/nonexistent.safetensors",
               f"--tokenizer_cache_dir={tokenizer}",
               "--network_module=networks.lora", f"--train_data_dir={img}", *DATASET, "--max_train_epochs=2",
               "--output_dir", str(tmp_path / "out"), *COSINE_FLOOR, "--lr_warmup_steps=40"]  # fmt: skip
    process = subprocess.run(command, capture_output=True, text=True, env=host_env(HF_HUB_OFFLINE="1"), cwd=SD_SCRIPTS_DIR, timeout=600)
    assert process.returncode == 2, process.stderr[-3000:]
    assert "--lr_warmup_steps: got 40" in process.stderr and "(36)" in process.stderr
    assert "Traceback" not in process.stderr and "nonexistent" not in process.stderr  # stopped before the model


def test_epoch_based_run_that_fits_trains(tmp_path):
    process = train([*COSINE_FLOOR, "--max_train_epochs", "2", "--samples", "4", "--lr_warmup_steps", "2"], tmp_path)
    assert process.returncode == 0, process.stderr[-3000:]
    assert "MODEL LOADING" in process.stdout


def test_both_min_values_warn_once_naming_both_and_the_winner(sd_parse, train_util, caplog):
    from sdsched_plugin.schedule import arguments

    arguments._warned.clear()
    with caplog.at_level(logging.WARNING, logger="sdsched_plugin"):
        args = sd_parse([*COSINE_FLOOR, "--max_train_steps", "10", "--lr_scheduler_args", "min_value=0.2"])
        request = arguments.read_request(args)
    assert request.values["min_value"] == 0.2
    messages = [r.getMessage() for r in caplog.records if "both given" in r.getMessage()]
    assert len(messages) == 1
    assert "--lr_scheduler_min_value=0.5" in messages[0] and "min_value=0.2 from --lr_scheduler_args is used" in messages[0]


def test_schedule_free_warning_is_bilingual(sd_parse, train_util, caplog):
    from sdsched_plugin.schedule import arguments

    arguments._warned.clear()
    with caplog.at_level(logging.WARNING, logger="sdsched_plugin"):
        sd_parse([*COSINE_FLOOR, "--optimizer_type", "RAdamScheduleFree"])
    (message,) = [r.getMessage() for r in caplog.records if "schedule-free" in r.getMessage()]
    assert "スケジュールフリー" in message


def test_stock_names_and_adafactor_pass(sd_parse, train_util):
    for name in ("cosine_with_min_lr", "warmup_stable_decay", "piecewise_constant", "adafactor:1e-3", "constant"):
        assert sd_parse(["--lr_scheduler", name]).lr_scheduler == name
