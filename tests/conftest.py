"""Shared fixtures. ``SD_SCRIPTS_DIR`` points the sd-scripts tests at a real checkout;
without it they run against the stand-in in ``tests/standin``."""

import argparse
import importlib
import json
import os
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


def pytest_report_header(config):
    return f"sd-scripts: {SD_SCRIPTS_DIR or 'stand-in (set SD_SCRIPTS_DIR for a real checkout)'}"


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


def host_env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HOST_DIR), env.get("PYTHONPATH")]))
    env["COLUMNS"] = "1000"  # sd-scripts logs through rich, which wraps lines at the terminal width
    env.update(extra)
    return env


def run_driver(argv, python=sys.executable, launcher=None, env=None, cwd=None):
    """Run the tiny training script in a real subprocess; returns (process, traces by rank)."""
    with tempfile.TemporaryDirectory() as trace_dir:
        command = [*(launcher or [python]), str(DRIVER), "--trace_dir", trace_dir, *argv]
        process = subprocess.run(command, capture_output=True, text=True, env=env or host_env(), cwd=cwd, timeout=600)
        records = [json.loads(path.read_text()) for path in Path(trace_dir).glob("rank*.json")]
    return process, {record["rank"]: record for record in records}
