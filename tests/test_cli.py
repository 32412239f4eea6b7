"""The ``sdsched`` command: numbers, TOML, --compare, --json, --plot, errors."""

import json
import os
from pathlib import Path
import math
import struct
import subprocess
import sys

import pytest
import torch

from sdsched_plugin import cli
from sdsched_plugin.schedule.cycles import PLAIN as PLAIN_RESTARTS


def preview_json(argv, capsys):
    assert cli.main(["preview", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def run_preview(argv):
    return cli.compute(argv)


def test_cosine_mean_multiplier_is_one_half_in_the_limit(capsys):
    steps = 100_000
    out = preview_json(["--lr_scheduler", "cosine", "--max_train_steps", str(steps)], capsys)
    mean = out["schedules"][0]["mean_multiplier"]
    # sum over k < S of (1 + cos(pi k / S)) / 2 is (S + 1) / 2 exactly
    assert mean == pytest.approx(0.5 + 0.5 / steps, rel=1e-9)
    assert out["schedules"][0]["match_constant_factor"] == pytest.approx(2.0, rel=1e-4)


@pytest.mark.parametrize("floor", [0.3, 0.5])
def test_floored_cosine_mean_is_one_plus_m_over_two(capsys, floor):
    steps = 100_000
    out = preview_json(["--lr_scheduler", "cosine_floor", "--lr_scheduler_min_value", str(floor), "--max_train_steps", str(steps)], capsys)
    summary = out["schedules"][0]
    assert summary["mean_multiplier"] == pytest.approx((1 + floor) / 2 + (1 - floor) / (2 * steps), rel=1e-9)
    assert summary["share_below_10pct_of_peak"] == 0.0


def test_per_epoch_means_match_a_direct_computation():
    result = run_preview(
        ["--lr_scheduler", "cosine_with_restarts_floor", "--lr_scheduler_min_value", "0.4", "--lr_scheduler_num_cycles", "2",
         "--max_train_epochs", "6", "--steps_per_epoch", "25", "--lr_warmup_steps", "0.1"]
    )  # fmt: skip
    total, warmup = 150, 15

    def multiplier(k):
        if k < warmup:
            return k / warmup
        progress = (k - warmup) / (total - warmup)
        return 0.4 + 0.6 * 0.5 * (1 + math.cos(math.pi * ((2 * progress) % 1.0)))

    expected = [sum(multiplier(k) for k in range(e * 25, e * 25 + 25)) / 25 for e in range(6)]
    assert result["schedules"][0]["summary"].epoch_means == pytest.approx(expected, rel=1e-12)
    keys = [(k.step, k.label) for k in result["schedules"][0]["summary"].key_steps]
    assert keys == [(0, "start"), (15, "warmup end"), (83, "restart"), (149, "last step")]  # restart at 15 + 135/2


def test_preview_uses_the_scheduler_training_builds(train_util, sd_parse):
    argv = ["--lr_scheduler", "polynomial_floor", "--lr_scheduler_min_value", "0.2", "--lr_scheduler_power", "2",
            "--max_train_steps", "40", "--lr_warmup_steps", "5"]  # fmt: skip
    shown = run_preview([*argv, "--num_processes", "2"])["schedules"][0]["multipliers"]
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = train_util.get_scheduler_fix(sd_parse(argv), optimizer, 2)
    trained = []
    for _ in range(40):  # accelerate steps the scheduler once per process per optimizer step
        trained.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
        scheduler.step()
    assert shown == trained


def test_compare_puts_schedules_side_by_side(capsys):
    assert cli.main(["preview", "--lr_scheduler", "cosine_with_restarts_floor", "--lr_scheduler_min_value", "0.5",
                     "--max_train_steps", "200", "--compare", "cosine_with_restarts,cosine_floor:min_value=0.3"]) == 0  # fmt: skip
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "cosine_floor:min_value=0.3" in line and "cosine_with_restarts " in line)
    assert header.split() == ["cosine_with_restarts_floor", "cosine_with_restarts", "cosine_floor:min_value=0.3"]
    final = next(line for line in out.splitlines() if line.startswith("final multiplier")).split()[2:]
    # in a comparison a stock name shows the stock curve, near 0 at the last step
    assert final[0] == "0.5000" and float(final[1]) < 0.001 and final[2] == "0.3000"


def test_json_has_every_number(capsys):
    out = preview_json(["--lr_scheduler", "linear_floor", "--lr_scheduler_min_value", "0.5", "--max_train_steps", "10", "--network_module=networks.lora",
                        "--learning_rate", "1e-4", "--text_encoder_lr", "5e-5", "--steps_per_epoch", "5"], capsys)  # fmt: skip
    assert out["steps"] == 10 and out["lrs"] == [5e-5, 1e-4]  # text encoder first, as sd-scripts builds them
    schedule = out["schedules"][0]
    assert schedule["settings"] == {"name": "linear_floor", "min_value": 0.5, "num_warmup_steps": 0, "num_training_steps": 10}
    assert schedule["key_steps"][-1] == {"step": 9, "label": "last step", "multiplier": pytest.approx(0.55)}
    assert schedule["epoch_means"] == pytest.approx([0.9, 0.65])


def test_list_names_the_floored_schedules(capsys):
    assert cli.main(["list"]) == 0
    assert capsys.readouterr().out.split() == ["cosine_floor", "cosine_with_restarts_floor", "linear_floor", "polynomial_floor", "rex", "rex_floor"]


GUI_CONFIG = Path(__file__).parent / "data" / "kohya_gui_lora.toml"


def test_reads_a_kohya_gui_config_and_flags_override_it():
    # the GUI's scheduler dropdown says cosine_with_restarts; its extra-arguments field adds the floor
    result = run_preview(["--config_file", str(GUI_CONFIG), "--lr_scheduler_min_value=0.5", "--steps_per_epoch", "125"])
    schedule = result["schedules"][0]
    assert result["steps"] == 1250 and result["lrs"] == [1.0, 1.0]
    assert schedule["settings"] == {
        "name": "cosine_with_restarts_floor",
        **PLAIN_RESTARTS,
        "min_value": 0.5,
        "num_cycles": 3,
        "num_warmup_steps": 125,
        "num_training_steps": 1250,
    }
    assert [k.step for k in schedule["summary"].key_steps] == [0, 125, 500, 875, 1249]
    assert min(schedule["multipliers"][125:]) == pytest.approx(0.5, abs=1e-4)
    assert len(schedule["summary"].epoch_means) == 10


@pytest.fixture(params=["sdsched reads", "sd-scripts reads"])
def reader(request, monkeypatch, tmp_path):
    """Run a test with the flags read by sdsched (no sd-scripts in reach) and by the training
    script (SD_SCRIPTS_DIR: the stand-in, or the real checkout it names)."""
    monkeypatch.chdir(tmp_path)
    if request.param == "sd-scripts reads":
        monkeypatch.setenv("SD_SCRIPTS_DIR", os.environ.get("SD_SCRIPTS_DIR") or str(Path(__file__).parent / "standin"))
    else:
        monkeypatch.delenv("SD_SCRIPTS_DIR", raising=False)
    return request.param


@pytest.mark.parametrize("command", [[], ["--", "train_network.py"]], ids=["flags", "command"])
def test_malformed_toml_names_the_file_and_line(reader, command, tmp_path, capsys):
    config = tmp_path / "broken.toml"
    config.write_text('lr_scheduler = "cosine"\nlr_warmup_steps = = 3\n')
    with pytest.raises(SystemExit) as caught:
        cli.main(["preview", *command, "--config_file", str(config)])
    assert caught.value.code == 2
    err = capsys.readouterr().err
    assert str(config) in err and "line 2" in err and "Traceback" not in err



@pytest.mark.parametrize("command", [[], ["--", "train_network.py"]], ids=["flags", "command"])
def test_a_toml_is_read_as_sd_scripts_reads_it(reader, command, tmp_path, capsys):
    """sd-scripts reads --config_file with the toml package, which refuses an array of mixed types
    (the standard library's tomllib accepts it): the preview refuses what training would refuse."""
    pytest.importorskip("toml")
    config = tmp_path / "mixed.toml"
    config.write_text('lr_scheduler = "cosine_floor"\nlr_scheduler_min_value = 0.5\nmax_train_steps = 100\nnoise = [1, "a"]\n')
    with pytest.raises(SystemExit) as caught:
        cli.main(["preview", *command, "--config_file", str(config)])
    err = capsys.readouterr().err
    assert caught.value.code == 2 and str(config) in err and "Not a homogeneous array (line 4" in err and "Traceback" not in err

@pytest.mark.parametrize("command", [[], ["--", "train_network.py"]], ids=["flags", "command"])
def test_missing_toml_is_named(reader, command, tmp_path, capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["preview", *command, "--config_file", str(tmp_path / "nope.toml")])
    assert caught.value.code == 2 and "nope.toml not found" in capsys.readouterr().err


@pytest.mark.parametrize(
    "argv, detail",
    [
        (["--lr_scheduler", "cosine_floor", "--lr_scheduler_min_value", "1.5"], "--lr_scheduler_min_value: got '1.5'"),
        (["--lr_scheduler", "cosine_floor"], "cosine_floor needs a floor"),
        (["--lr_scheduler_type", "sdsched_plugin:linear_flor"], "Did you mean: linear_floor"),
        (["--lr_scheduler", "cosine_floor", "--lr_scheduler_min_value", "0.5", "--max_train_steps", "10", "--lr_warmup_steps", "10"], "--lr_warmup_steps: got 10"),
        (["--max_train_epochs", "3"], "--max_train_epochs: got 3"),
    ],
)
def test_bad_input_gets_the_training_messages(argv, detail, capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["preview", *argv])
    assert caught.value.code == 2
    assert detail in capsys.readouterr().err


COMPARE_MISTAKES = [
    ("cosin", "--compare cosin: unknown schedule 'cosin'. Did you mean: cosine, cosine_floor? Known: constant,"),
    ("cosine_floor:min_value=2",
     "--compare cosine_floor:min_value=2 min_value: got '2'; allowed: a number from 0 to 1, e.g. 0.5 / 指定値 '2' は使えません。"
     "0 から 1 までの数値を指定してください(例: 0.5)"),
    ("cosine,cosine_with_restarts_floor:min_value=0.3:cycle_decay=2",
     "--compare cosine_with_restarts_floor:min_value=0.3:cycle_decay=2 cycle_decay: got '2'; allowed: a number > 0 and <= 1"),
    ("sdsched_plugin:cosine_flor", "--compare sdsched_plugin:cosine_flor: unknown schedule 'cosine_flor'. Did you mean: cosine_floor,"),
    ("cosine_floor:bogus=1", "--compare cosine_floor:bogus=1: got 'bogus=1'; allowed: key=value with a key from: min_value,"),
    ("polynomial:lr_end=1", "--compare polynomial:lr_end=1 lr_end: got 1; allowed: below the learning rate (0.0001)"),
    ("cosine_with_min_lr", "--compare cosine_with_min_lr min_lr_ratio: missing; a ratio for cosine_with_min_lr"),
    # the value is the command line's, the mistake is the entry's: both are named
    ("constant", "--compare constant (with --lr_warmup_steps): got 10; allowed: 0 with constant"),
]  # fmt: skip


@pytest.mark.parametrize("compare, message", COMPARE_MISTAKES, ids=[c for c, _ in COMPARE_MISTAKES])
def test_compare_mistakes_blame_the_entry_not_the_flags(compare, message):
    """The main schedule is right; the --compare entry is wrong: the error says which entry, in
    one line (English / 日本語), exit 2, no traceback, never --lr_scheduler / --lr_scheduler_min_value."""
    argv = ["preview", "--lr_scheduler=cosine_with_restarts_floor", "--lr_scheduler_min_value=0.5", "--max_train_steps=100",
            "--lr_warmup_steps=10", "--learning_rate=1e-4", f"--compare={compare}"]  # fmt: skip
    process = subprocess.run([sys.executable, "-m", "sdsched_plugin.cli", *argv], capture_output=True, text=True, timeout=120)
    assert process.returncode == 2 and process.stdout == ""
    lines = process.stderr.splitlines()
    assert lines[0].startswith("usage: sdsched preview") and "Traceback" not in process.stderr
    assert lines[-1].startswith(f"sdsched preview: error: {message}"), lines[-1]
    assert " / " in lines[-1] and "--lr_scheduler:" not in lines[-1] and "--lr_scheduler_min_value:" not in lines[-1]


def png_size(path):
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def test_plot_writes_a_png_of_the_requested_size(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    path = tmp_path / "schedule.png"
    assert cli.main(["preview", "--lr_scheduler", "cosine_floor", "--lr_scheduler_min_value", "0.5", "--max_train_steps", "300",
                     "--steps_per_epoch", "50", "--compare", "cosine", "--plot", str(path), "--plot_size", "900x450"]) == 0  # fmt: skip
    assert png_size(path) == (900, 450)
    assert f"plot: {path}" in capsys.readouterr().out


def test_plot_without_matplotlib_says_how_to_get_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    with pytest.raises(SystemExit) as caught:
        cli.main(["preview", "--lr_scheduler", "cosine", "--plot", str(tmp_path / "x.png")])
    assert caught.value.code == 2
    assert "pip install 'sdsched-plugin[plot]'" in capsys.readouterr().err
    assert not (tmp_path / "x.png").exists()


def test_one_reading_serves_training_and_the_preview(sd_parse, monkeypatch):
    """read_schedule reads the flags once into a Request: training's read_request is its floored
    answer, the preview draws every kind from it, and each schedule's --lr_scheduler_args are
    parsed once, by the meaning of that schedule."""
    from sdsched_plugin.commands import preview
    from sdsched_plugin.schedule import arguments, options, stock

    args = sd_parse(["--lr_scheduler=cosine", "--lr_scheduler_args", "min_value=0.3", "--max_train_steps=10", "--learning_rate=1e-4"])
    floored = arguments.read_schedule(args, pure=True)
    assert (floored.kind, floored.label, floored.values) == ("floored", "cosine (floored)", {"min_value": 0.3})
    assert arguments.read_request(args).values == floored.values
    own = arguments.read_schedule(sd_parse(["--lr_scheduler=cosine_with_min_lr", "--lr_scheduler_min_lr_ratio=0.1"]), pure=True)
    assert own.kind == "stock" and own.stock["min_lr_ratio"] == 0.1 and own.stock["scheduler_kwargs"] == {}
    assert arguments.read_request(sd_parse(["--lr_scheduler=cosine_with_min_lr", "--lr_scheduler_min_lr_ratio=0.1"])) is None

    parsed = []
    for module, name in ((options, "parse_key_values"), (stock, "parse_scheduler_args")):
        original = getattr(module, name)
        monkeypatch.setattr(module, name, lambda tokens, *rest, _o=original, _n=name: parsed.append((_n, list(tokens))) or _o(tokens, *rest))
    run = preview.Run(10, None)
    shown = preview.schedules(args, run, "polynomial:lr_end=1e-6,cosine_floor:min_value=0.2")
    assert [s.label for s in shown] == ["cosine (floored)", "polynomial:lr_end=1e-6", "cosine_floor:min_value=0.2"]
    assert [s.multipliers[5] for s in shown] == [0.3 + 0.7 * 0.5, ((1e-4 - 1e-6) * 0.5**1.0 + 1e-6) / 1e-4, 0.2 + 0.8 * 0.5]
    assert parsed == [
        ("parse_scheduler_args", []),  # --optimizer_args, for the optimizer's own schedules
        ("parse_key_values", ["min_value=0.3"]),
        ("parse_scheduler_args", []),
        ("parse_scheduler_args", ["lr_end=1e-6"]),
        ("parse_scheduler_args", []),
        ("parse_key_values", []),
    ]
