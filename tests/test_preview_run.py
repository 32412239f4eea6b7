"""The preview of the run you will actually train: the pasted command, the process count,
the param groups in sd-scripts' order, epochs, --trace, warnings and bad preview flags."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import STANDIN, host_env
from sdsched_plugin import cli
from sdsched_plugin.run import command
from sdsched_plugin.commands import preview
from sdsched_plugin.schedule.options import OptionError


def json_of(argv, capsys):
    assert cli.main(["preview", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


# --- the pasted command -------------------------------------------------------------------


@pytest.mark.parametrize(
    "tokens, processes",
    [
        (["accelerate", "launch", "--num_processes=2", "--num_cpu_threads_per_process", "2", "train_network.py", "--a"], 2),
        (["/home/u/kohya_ss/venv/bin/accelerate", "launch", "--num_processes", "3", "--num_machines", "1", "x/train_network.py"], 3),
        (["python", "train_network.py", "--a"], 1),
        (["python", "-m", "accelerate.commands.launch", "--num_processes=4", "sdxl_train_network.py"], 4),
        (["torchrun", "--nproc_per_node=2", "--nnodes=2", "train_network.py"], 4),
        (["accelerate", "launch", "--cpu", "train_network.py"], 1),
    ],
)
def test_the_launcher_gives_the_process_count(tokens, processes, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # no default accelerate config here
    read = command.read_command(tokens)
    assert read.num_processes == processes
    assert read.script.name.endswith("train_network.py")
    assert read.script_args == tokens[tokens.index(next(t for t in tokens if t.endswith(".py"))) + 1 :]


def test_accelerate_config_files_give_the_count_when_the_flag_does_not(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    default = tmp_path / "accelerate" / "default_config.yaml"
    default.parent.mkdir()
    default.write_text("compute_environment: LOCAL_MACHINE\ndistributed_type: MULTI_GPU\nnum_processes: 2\n")
    assert command.read_command(["accelerate", "launch", "train_network.py"]).num_processes == 2
    other = tmp_path / "four.yaml"
    other.write_text("num_processes: 4\n")
    assert command.read_command(["accelerate", "launch", "--config_file", str(other), "train_network.py"]).num_processes == 4
    assert command.read_command(["accelerate", "launch", "--num_processes=1", "train_network.py"]).num_processes == 1


def test_a_command_pasted_as_one_string_and_windows_paths(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    read = command.read_command(['accelerate launch --num_processes=2 "C:\\kohya_ss\\sd-scripts\\train_network.py" --config_file=c.toml'])
    assert read.script.name == "train_network.py" and read.num_processes == 2 and read.script_args == ["--config_file=c.toml"]


def test_a_command_without_a_script_is_named():
    with pytest.raises(OptionError, match="a training command with its script"):
        command.read_command(["accelerate", "launch", "--num_processes=2"])


# --- param groups -------------------------------------------------------------------------


def groups(**values):
    base = {"learning_rate": 1e-4, "network_module": "networks.lora", "unet_lr": None, "text_encoder_lr": None}
    return preview.param_groups(type("Args", (), {**base, **values})())


def test_text_encoder_group_comes_first_as_sd_scripts_builds_it():
    assert groups(unet_lr=1e-4, text_encoder_lr=[5e-5]) == [("textencoder", 5e-5), ("unet", 1e-4)]
    assert groups(unet_lr=3e-4) == [("textencoder", 1e-4), ("unet", 3e-4)]
    assert groups(text_encoder_lr=5e-5) == [("textencoder", 5e-5), ("unet", 1e-4)]  # TOML: a float


def test_two_text_encoder_lrs_for_networks_with_one_per_encoder():
    assert groups(network_module="networks.lora_flux", text_encoder_lr=[1e-5, 2e-5]) == [
        ("textencoder1", 1e-5), ("textencoder2", 2e-5), ("unet", 1e-4)
    ]  # fmt: skip
    # networks.lora (SD1.5, SDXL: both encoders in one group) takes the first value
    assert groups(text_encoder_lr=[1e-5, 2e-5]) == [("textencoder", 1e-5), ("unet", 1e-4)]


def test_groups_left_out_as_sd_scripts_leaves_them_out():
    assert groups(network_train_unet_only=True) == [("unet", 1e-4)]
    assert groups(network_train_text_encoder_only=True) == [("textencoder", 1e-4)]
    assert groups(text_encoder_lr=[0.0]) == [("unet", 1e-4)]  # "NO LR skipping!"
    assert groups(network_args=["loraplus_lr_ratio=16"]) == [
        ("textencoder", 1e-4), ("textencoder plus", 1.6e-3), ("unet", 1e-4), ("unet plus", 1.6e-3)
    ]  # fmt: skip
    assert groups(network_module=None) == [("all", 1e-4)]


# --- the run in the output ----------------------------------------------------------------


def test_unet_and_text_encoder_lrs_in_sd_scripts_order_with_each_epoch_mean(capsys):
    # a LoRA (with sd-scripts found, train_network.py reads the flags: no default network module there)
    out = json_of(["--lr_scheduler", "linear_floor", "--lr_scheduler_min_value", "0.5", "--max_train_epochs", "2", "--network_module=networks.lora",
                   "--steps_per_epoch", "5", "--unet_lr", "1e-4", "--text_encoder_lr", "5e-5"], capsys)  # fmt: skip
    assert out["steps"] == 10 and out["steps_per_epoch"] == 5 and out["epochs"] == 2
    assert out["groups"] == ["textencoder", "unet"] and out["lrs"] == [5e-5, 1e-4]
    assert out["schedules"][0]["epoch_means"] == pytest.approx([0.9, 0.65])
    cli.main(["preview", "--lr_scheduler", "linear_floor", "--lr_scheduler_min_value", "0.5", "--max_train_epochs", "2", "--network_module=networks.lora",
              "--steps_per_epoch", "5", "--unet_lr", "1e-4", "--text_encoder_lr", "5e-5"])  # fmt: skip
    text = capsys.readouterr().out
    assert "epoch 1 mean LR" in text and "4.500e-05 / 9.000e-05" in text  # both groups, TE first
    assert "LR groups: textencoder 5e-05, unet 0.0001" in text


def test_trace_gives_every_update_as_the_optimizer_sees_it(capsys):
    import torch

    from sdsched_plugin.schedule import schedulers

    argv = ["--lr_scheduler", "cosine_with_restarts_floor", "--lr_scheduler_min_value", "0.3", "--lr_scheduler_num_cycles", "2",
            "--max_train_steps", "37", "--lr_warmup_steps", "0.1", "--num_processes", "2", "--trace"]  # fmt: skip
    out = json_of(argv, capsys)
    multipliers = out["schedules"][0]["multipliers"]
    assert len(multipliers) == 37
    # the scheduler training builds, stepped as accelerate steps it: once per process per update
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = schedulers.CosineWithRestartsFloor(optimizer, min_value=0.3, num_cycles=2, num_training_steps=74, num_warmup_steps=7)
    seen = []
    for _ in range(37):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
        scheduler.step()
    assert multipliers == seen


def test_traps_get_a_short_warning(capsys, tmp_path):
    config = tmp_path / "gui.toml"  # the GUI wrote the epoch count into an empty "LR # cycles"
    config.write_text('lr_scheduler = "cosine_with_restarts"\nlr_scheduler_min_value = 0.5\nmax_train_epochs = 7\n'
                      "lr_scheduler_num_cycles = 7\nlr_warmup_steps = 0.2\n")  # fmt: skip
    out = json_of(["--config_file", str(config), "--steps_per_epoch", "10"], capsys)
    warnings = "\n".join(out["warnings"])
    assert "the kohya_ss GUI writes the epoch count" in warnings
    assert "more than a tenth of the run" in warnings
    assert "restarts fall inside epochs" in warnings  # 7 cycles after a 14-step warmup: not on epoch boundaries


def test_the_whole_training_command_is_read_by_the_scripts_own_parser(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('lr_scheduler = "cosine_floor"\nlr_scheduler_min_value = 0.4\nmax_train_steps = 30\nunet_lr = 1e-4\n'
                      'network_module = "networks.lora"\ntext_encoder_lr = [2e-5]\n')  # fmt: skip
    env = host_env(SD_SCRIPTS_DIR=str(STANDIN), HF_HOME=str(tmp_path))
    if os.environ.get("SD_SCRIPTS_DIR"):
        env["SD_SCRIPTS_DIR"] = os.environ["SD_SCRIPTS_DIR"]
    script = Path(env["SD_SCRIPTS_DIR"]) / "train_network.py"
    argv = ["preview", "--json", "--", "accelerate", "launch", "--num_processes=2", str(script), f"--config_file={config}", "--network_dim=8"]
    process = subprocess.run([sys.executable, "-m", "sdsched_plugin.cli", *argv], capture_output=True, text=True, env=env, timeout=300)
    assert process.returncode == 0, process.stderr[-3000:]
    out = json.loads(process.stdout)
    assert out["read_by"].startswith("train_network.py (sd-scripts at") and out["num_processes"] == 2
    assert out["steps"] == 30 and out["lrs"] == [2e-5, 1e-4]
    assert out["schedules"][0]["settings"]["num_training_steps"] == 60  # scaled by the processes, as sd-scripts does
    bad = subprocess.run([sys.executable, "-m", "sdsched_plugin.cli", *argv, "--lr_scheduler_min_value=2"], capture_output=True, text=True, env=env, timeout=300)
    assert bad.returncode == 2 and "--lr_scheduler_min_value" in bad.stderr and "usage: train_network.py" in bad.stderr


@pytest.mark.parametrize(
    "argv, detail",
    [
        (["--plot", "/no/such/folder/x.png"], "does not exist"),
        (["--plot", "x.bmpx"], "must end in .png, .svg, .pdf"),
        (["--plot_size", "big"], "WIDTHxHEIGHT"),
        (["--plot_size", "100000x100000"], "from 100 to 8000"),
        (["--steps_per_epoch", "0"], "--steps_per_epoch"),
        (["--learning_rate", "-1"], "--learning_rate"),
        (["--unet_lr", "-1e-4"], "--unet_lr"),
        (["--num_processes", "0"], "--num_processes"),
    ],
)
def test_bad_preview_flags_exit_2_before_computing(argv, detail, capsys):
    with pytest.raises(SystemExit) as caught:
        cli.main(["preview", "--lr_scheduler", "cosine", "--max_train_steps", "10", *argv])
    assert caught.value.code == 2
    assert detail in capsys.readouterr().err


# --- the run from a dataset ---------------------------------------------------------------


def kohya_dataset(root: Path) -> Path:
    """img/5_mychar: 3 square + 2 wide + 2 tall images, 5 repeats (odd bucket counts at batch size 2)."""
    from test_dataset_count import SQUARE, TALL, WIDE, make_images

    make_images(root / "img" / "5_mychar", [SQUARE, SQUARE, SQUARE, WIDE, WIDE, TALL, TALL])
    return root / "img"


# BucketManager at --resolution=64 (area 64*64), steps of 32: the square and the 96x64 images go to
# 64x64 (5 images x 5 repeats = 25), the 64x96 ones to 32x96 (10); at batch size 2:
# ceil(25 / 2) + ceil(10 / 2) = 13 + 5 = 18 batches per epoch
DATASET = ["--enable_bucket", "--resolution=64", "--min_bucket_reso=32", "--max_bucket_reso=128", "--bucket_reso_steps=32",
           "--caption_extension=.txt", "--train_batch_size=2"]  # fmt: skip


def test_epochs_and_a_dataset_give_the_steps_sd_scripts_trains(tmp_path, capsys):
    img = kohya_dataset(tmp_path)
    out = json_of(["--train_data_dir", str(img), *DATASET, "--max_train_epochs=10", "--gradient_accumulation_steps=4",
                   "--lr_scheduler=cosine_floor", "--lr_scheduler_min_value=0.5"], capsys)  # fmt: skip
    # train_network.py: 10 * ceil(18 batches / 1 process / 4) = 50, not 10 * 18 = 180
    assert out["steps"] == 50 and out["steps_per_epoch"] == 5 and out["epochs"] == 10
    assert out["dataset"]["batches"] == 18
    assert out["dataset"]["source"] == ("sd-scripts" if os.environ.get("SD_SCRIPTS_DIR") else "folder layout")
    assert out["dataset"]["datasets"][0]["buckets"] == [[[32, 96], 10], [[64, 64], 25]]
    assert out["schedules"][0]["settings"]["num_training_steps"] == 50


def test_a_kohya_gui_config_with_its_dataset_on_two_processes(tmp_path, capsys):
    img = kohya_dataset(tmp_path)
    config = tmp_path / "gui.toml"  # the GUI's layout: flat keys, warmup as a float ratio, a list text_encoder_lr
    config.write_text(
        f'train_data_dir = "{img}"\nmax_train_epochs = 4\ntrain_batch_size = 2\nenable_bucket = true\nresolution = "64,64"\n'
        'min_bucket_reso = 32\nmax_bucket_reso = 128\nbucket_reso_steps = 32\ncaption_extension = ".txt"\n'
        'lr_scheduler = "cosine_with_restarts"\nlr_scheduler_num_cycles = 2\nlr_warmup_steps = 0.1\n'
        'network_module = "networks.lora"\nunet_lr = 1e-4\ntext_encoder_lr = [5e-5]\nlearning_rate = 1e-4\n'
    )
    out = json_of(["--config_file", str(config), "--lr_scheduler_min_value=0.5", "--num_processes=2"], capsys)
    # 4 * ceil(18 / 2 processes / 1) = 36 updates; the scheduler counts 72 steps (2 per update)
    assert out["steps"] == 36 and out["steps_per_epoch"] == 9 and out["num_processes"] == 2
    assert out["lrs"] == [5e-5, 1e-4]
    assert out["schedules"][0]["settings"]["num_training_steps"] == 72
    assert out["schedules"][0]["settings"]["num_warmup_steps"] == 7  # int(0.1 * 72), as sd-scripts truncates


def test_the_pasted_command_counts_the_dataset(tmp_path):
    img = kohya_dataset(tmp_path)
    env = host_env(HF_HOME=str(tmp_path))
    folder = Path(os.environ["SD_SCRIPTS_DIR"]) if os.environ.get("SD_SCRIPTS_DIR") else tmp_path / "elsewhere"
    if not os.environ.get("SD_SCRIPTS_DIR"):
        env["PYTHONPATH"] = ""  # no sd-scripts anywhere: an importable `library` counts as installed sd-scripts
    argv = ["preview", "--json", "--", "accelerate", "launch", "--num_processes=2", str(folder / "train_network.py"),
            f"--train_data_dir={img}", *DATASET, "--max_train_epochs=3", "--network_module=networks.lora",
            "--pretrained_model_name_or_path=unused", "--lr_scheduler=linear"]  # fmt: skip
    process = subprocess.run([sys.executable, "-m", "sdsched_plugin.cli", *argv], capture_output=True, text=True, env=env, timeout=600)
    assert process.returncode == 0, process.stderr[-3000:]
    out = json.loads(process.stdout)
    assert out["steps"] == 3 * 9 and out["num_processes"] == 2  # 3 * ceil(18 / 2)
    assert out["dataset"]["source"] == ("sd-scripts" if os.environ.get("SD_SCRIPTS_DIR") else "folder layout")


# --- a bare flag list is a command --------------------------------------------------------------

# the flag list of a LoRA training command, as pasted from it: flags that shape the schedule and flags that do not
LORA_FLAGS = ["--pretrained_model_name_or_path=model.safetensors", "--network_module=networks.lora", "--network_dim=8",
              "--lr_scheduler=cosine_with_restarts", "--lr_scheduler_min_value=0.4", "--lr_scheduler_num_cycles=2",
              "--max_train_steps=50", "--learning_rate=1e-4", "--unet_lr=1e-4", "--text_encoder_lr=5e-5", "--lr_warmup_steps=0.1"]  # fmt: skip


def sdsched(argv, cwd, **env):
    environment = {k: v for k, v in host_env(**env).items() if v is not None}
    return subprocess.run([sys.executable, "-m", "sdsched_plugin.cli", *argv], capture_output=True, text=True, env=environment, cwd=cwd, timeout=300)


def test_a_bare_flag_list_is_read_like_the_command_it_comes_from(tmp_path):
    """With sd-scripts found (SD_SCRIPTS_DIR: the stand-in, or a real checkout), a pasted flag list
    is read by train_network.py's own parser, exactly as the same flags after `-- train_network.py`."""
    folder = os.environ.get("SD_SCRIPTS_DIR") or str(STANDIN)
    bare = sdsched(["preview", "--json", *LORA_FLAGS], tmp_path, SD_SCRIPTS_DIR=folder, HF_HOME=str(tmp_path))
    command = sdsched(["preview", "--json", "--", "train_network.py", *LORA_FLAGS], tmp_path, SD_SCRIPTS_DIR=folder, HF_HOME=str(tmp_path))
    assert bare.returncode == 0 and command.returncode == 0, bare.stderr[-3000:] + command.stderr[-3000:]
    assert json.loads(bare.stdout) == json.loads(command.stdout)
    out = json.loads(bare.stdout)
    assert out["read_by"].startswith("train_network.py (sd-scripts at") and out["groups"] == ["textencoder", "unet"]
    assert out["schedules"][0]["settings"]["num_warmup_steps"] == 5 and out["schedules"][0]["label"] == "cosine_with_restarts (floored)"


@pytest.mark.parametrize(
    "typo, message",
    [
        ("--lr_schedular=cosine", "train_network.py: error: unrecognized arguments: --lr_schedular=cosine"),
        ("--lr_scheduler=cosin", "train_network.py: error: --lr_scheduler: unknown schedule 'cosin'. Did you mean: cosine, cosine_floor?"),
    ],
)
def test_a_typo_in_a_bare_flag_list_is_the_scripts_error(typo, message, train_util, tmp_path, monkeypatch, capsys):
    """Read by the script's parser, a typo in a flag list stops as the script would stop it."""
    monkeypatch.setenv("SD_SCRIPTS_DIR", os.environ.get("SD_SCRIPTS_DIR") or str(STANDIN))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as caught:
        cli.main(["preview", *LORA_FLAGS, typo])
    assert caught.value.code == 2 and message in capsys.readouterr().err


def test_without_sd_scripts_a_flag_list_names_what_it_ignores(tmp_path):
    """No sd-scripts: the flags that shape the schedule are read (strictly), the other sd-scripts
    flags are listed once as ignored with how to point the preview at sd-scripts, and a flag
    sd-scripts does not have is an error."""
    nowhere = {"SD_SCRIPTS_DIR": None, "PYTHONPATH": ""}  # host_env's PYTHONPATH would make the stand-in an installed `library`
    out = sdsched(["preview", "--json", *LORA_FLAGS, "--network_dim=16"], tmp_path, **nowhere)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["read_by"] == "flags"
    assert out.stderr.splitlines() == [
        "sdsched preview: ignored (sd-scripts not found; they do not shape the schedule): --pretrained_model_name_or_path,"
        " --network_dim; run the preview in the sd-scripts folder, or set SD_SCRIPTS_DIR=/path/to/sd-scripts, to read every"
        " flag with the training script's own parser / sd-scripts のフォルダで実行するか SD_SCRIPTS_DIR を設定すると、"
        "すべてのフラグを学習スクリプト自身のパーサーで読みます"
    ]
    strict = sdsched(["preview", *LORA_FLAGS, "--lr_scheduler_min_value=2"], tmp_path, **nowhere)
    assert strict.returncode == 2 and "argument --lr_scheduler_min_value: got '2'; allowed: a number from 0 to 1" in strict.stderr
    typo = sdsched(["preview", *LORA_FLAGS, "--lr_schedular=cosine"], tmp_path, **nowhere)
    assert typo.returncode == 2 and typo.stderr.splitlines()[-1] == (
        "sdsched preview: error: unrecognized arguments: --lr_schedular=cosine; did you mean: --lr_scheduler, --lr_scheduler_args,"
        " --lr_scheduler_type?"
    )
    assert "Traceback" not in strict.stderr + typo.stderr
