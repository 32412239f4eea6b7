"""Shared fixtures. ``SD_SCRIPTS_DIR`` points the sd-scripts tests at a real checkout;
without it they run against the stand-in in ``tests/standin``."""

import argparse
import importlib
import json
import os
import site
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
REPO = TESTS.parent
STANDIN = TESTS / "standin"
DRIVER = TESTS / "driver" / "train_tiny.py"
SD_SCRIPTS_DIR = Path(os.environ["SD_SCRIPTS_DIR"]).resolve() if os.environ.get("SD_SCRIPTS_DIR") else None
HOST_DIR = SD_SCRIPTS_DIR or STANDIN
MUSUBI_TUNER_DIR = Path(os.environ["MUSUBI_TUNER_DIR"]).resolve() if os.environ.get("MUSUBI_TUNER_DIR") else None
# musubi-tuner keeps its package under src/
MUSUBI_DIR = (MUSUBI_TUNER_DIR / "src" if (MUSUBI_TUNER_DIR / "src").is_dir() else MUSUBI_TUNER_DIR) if MUSUBI_TUNER_DIR else TESTS / "standin_musubi"


def pytest_report_header(config):
    return [
        f"sd-scripts: {SD_SCRIPTS_DIR or 'stand-in (set SD_SCRIPTS_DIR for a real checkout)'}",
        f"musubi-tuner: {MUSUBI_TUNER_DIR or 'stand-in (set MUSUBI_TUNER_DIR for a real checkout)'}",
    ]


@pytest.fixture(scope="session")
def train_util():
    """sd-scripts' library.train_util (real or stand-in), patched by the plugin."""
    if str(HOST_DIR) not in sys.path:
        sys.path.insert(0, str(HOST_DIR))
    module = importlib.import_module("library.train_util")
    assert Path(module.__file__).resolve().is_relative_to(HOST_DIR), module.__file__
    from sdsched_plugin import sd_scripts

    sd_scripts.install(module)  # a no-op when the .pth hook already patched it at import
    return module


@pytest.fixture
def sd_parse(train_util, monkeypatch):
    """Parse like an sd-scripts script: parser, parse_args, read_config_from_file. The argv
    goes into sys.argv too, because read_config_from_file parses sys.argv again."""

    def parse(argv):
        monkeypatch.setattr(sys, "argv", ["train.py", *argv])
        parser = argparse.ArgumentParser()
        train_util.add_training_arguments(parser, True)
        train_util.add_optimizer_arguments(parser)
        args = parser.parse_args(argv)
        return train_util.read_config_from_file(args, parser)

    return parse


def two_group_optimizer(unet_lr=1e-3, text_encoder_lr=5e-4):
    """U-Net and text-encoder param groups with different LRs, as the trainers build them."""
    import torch

    unet, text_encoder = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    return torch.optim.AdamW([{"params": unet.parameters(), "lr": unet_lr}, {"params": text_encoder.parameters(), "lr": text_encoder_lr}])


def lr_trace(scheduler, optimizer, steps):
    """The LRs of each param group used at each optimizer step, read from the optimizer."""
    trace = []
    for _ in range(steps):
        trace.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    return trace


def host_env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HOST_DIR), str(MUSUBI_DIR), env.get("PYTHONPATH")]))
    env["COLUMNS"] = "1000"  # sd-scripts logs through rich, which wraps lines at the terminal width
    env.update(extra)
    return env


def run_driver(argv, python=sys.executable, launcher=None, env=None, cwd=None, timeout=600):
    """Run the tiny training script in a real subprocess; returns (process, traces by rank)."""
    with tempfile.TemporaryDirectory() as trace_dir:
        command = [*(launcher or [python]), str(DRIVER), "--trace_dir", trace_dir, *argv]
        process = subprocess.run(command, capture_output=True, text=True, env=env or host_env(), cwd=cwd, timeout=timeout)
        records = [json.loads(path.read_text()) for path in Path(trace_dir).glob("rank*.json")]
    return process, {record["rank"]: record for record in records}


@pytest.fixture(scope="session")
def wheel_venv(tmp_path_factory):
    """A fresh venv with the wheel built from this checkout. torch and the rest come from the
    test environment through a plain path line (a path added that way is not scanned for
    .pth files, so the test environment's own copy of the plugin stays inactive)."""
    root = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root / "dist"), str(REPO)],
        check=True,
    )
    wheel = next((root / "dist").glob("sdsched_plugin-*.whl"))
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    purelib = Path(subprocess.check_output([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], text=True).strip())
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(purelib), str(wheel)], check=True)
    (purelib / "_sdsched_test_deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    assert (purelib / "sdsched_plugin.pth").is_file(), "the wheel must ship the startup hook"
    return python


def clip_tokenizer_cache(root: Path) -> Path:
    """A tiny local CLIP tokenizer where sd-scripts' ``--tokenizer_cache_dir`` looks
    (``<dir>/openai_clip-vit-large-patch14``): the hub is out of reach here, and a real
    train_network.py loads its tokenizer before it builds the dataset group."""
    from transformers.models.clip.tokenization_clip import bytes_to_unicode

    folder = root / "openai_clip-vit-large-patch14"
    folder.mkdir(parents=True, exist_ok=True)
    chars = list(bytes_to_unicode().values())
    tokens = chars + [c + "</w>" for c in chars] + ["<|startoftext|>", "<|endoftext|>"]
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(tokens)}), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n", encoding="utf-8")
    special = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "<|endoftext|>", "unk_token": "<|endoftext|>"}
    (folder / "tokenizer_config.json").write_text(json.dumps({"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, **special}))
    (folder / "special_tokens_map.json").write_text(json.dumps(special))
    return root
