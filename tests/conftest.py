"""Shared fixtures. ``SD_SCRIPTS_DIR`` points the sd-scripts tests at a real checkout;
without it they run against the stand-in in ``tests/standin``."""

import argparse
import atexit
import importlib
import itertools
import json
import os
import signal
import site
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import pytest

TESTS = Path(__file__).parent
REPO = TESTS.parent
STANDIN = TESTS / "standin"
DRIVER = TESTS / "driver" / "train_tiny.py"
SD_SCRIPTS_DIR = Path(os.environ["SD_SCRIPTS_DIR"]).resolve() if os.environ.get("SD_SCRIPTS_DIR") else None
HOST_DIR = SD_SCRIPTS_DIR or STANDIN
MUSUBI_TUNER_DIR = Path(os.environ["MUSUBI_TUNER_DIR"]).resolve() if os.environ.get("MUSUBI_TUNER_DIR") else None
# musubi-tuner keeps its package under src/ (from v0.2.0; v0.1.x has its modules at the top)
MUSUBI_DIR = (MUSUBI_TUNER_DIR / "src" if (MUSUBI_TUNER_DIR / "src").is_dir() else MUSUBI_TUNER_DIR) if MUSUBI_TUNER_DIR else TESTS / "standin_musubi"


def musubi_layout(root: Path) -> str:
    """Which musubi-tuner layout is at ``root`` (the folder that goes on sys.path)."""
    if (root / "musubi_tuner" / "training" / "parser_common.py").is_file():
        return "training package (v0.3.0 on)"
    if (root / "musubi_tuner" / "hv_train_network.py").is_file():
        return "package hv_train_network (v0.2.x)"
    if (root / "hv_train_network.py").is_file():
        return "top-level hv_train_network (v0.1.x)"
    return "unknown"


MUSUBI_LAYOUT = musubi_layout(MUSUBI_DIR)
MUSUBI_IS_NEW = MUSUBI_LAYOUT.startswith("training")


def pytest_report_header(config):
    return [
        f"sd-scripts: {SD_SCRIPTS_DIR or 'stand-in (set SD_SCRIPTS_DIR for a real checkout)'}",
        f"musubi-tuner: {MUSUBI_TUNER_DIR or 'stand-in (set MUSUBI_TUNER_DIR for a real checkout)'}, {MUSUBI_LAYOUT}",
    ]


@pytest.fixture(scope="session")
def train_util():
    """sd-scripts' library.train_util (real or stand-in), patched by the plugin."""
    if str(HOST_DIR) not in sys.path:
        sys.path.insert(0, str(HOST_DIR))
    module = importlib.import_module("library.train_util")
    assert Path(module.__file__).resolve().is_relative_to(HOST_DIR), module.__file__
    from sdsched_plugin.hosts import sd_scripts

    sd_scripts.install(module)  # a no-op when the .pth hook already patched it at import
    return module


@pytest.fixture(autouse=True)
def stand_ins_are_not_installed(monkeypatch):
    """The suite's own process puts the stand-ins on sys.path (and in sys.modules) for the tests
    that import them. To the preview's finder that looks like an sd-scripts installed in this
    venv, found or not depending on which tests ran before in the same worker. Here a stand-in
    is found only where a test points at it (SD_SCRIPTS_DIR, the cwd, the script's folder);
    tests of the installed case set ``locate.package_dir`` themselves."""
    from sdsched_plugin.run import locate

    package_dir = locate.package_dir

    def installed_outside_the_tests(name):
        found = package_dir(name)
        return None if found is not None and found.resolve().is_relative_to(TESTS) else found

    monkeypatch.setattr(locate, "package_dir", installed_outside_the_tests)


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


def resumed_and_original(cls, kwargs: dict, at: int, more: int):
    """(LRs of a scheduler resumed at step ``at`` from the saved states, LRs of the original going
    on): ``more`` steps each, two param groups, as accelerate's save_state / load_state do it."""
    first = two_group_optimizer()
    original = cls(first, **kwargs)
    lr_trace(original, first, at)
    again = two_group_optimizer()
    resumed = cls(again, **kwargs)
    again.load_state_dict(first.state_dict())
    resumed.load_state_dict(original.state_dict())
    assert resumed.sdsched == original.sdsched
    return lr_trace(resumed, again, more), lr_trace(original, first, more)


def host_env(**extra):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HOST_DIR), str(MUSUBI_DIR), env.get("PYTHONPATH")]))
    env["COLUMNS"] = "1000"  # sd-scripts logs through rich, which wraps lines at the terminal width
    env.update(extra)
    return env


def run_driver(argv, python=sys.executable, launcher=None, env=None, cwd=None, timeout=600):
    """Run the tiny training script in a real subprocess; returns (process, traces by rank).
    On a timeout every process of the run is ended (see ``Run``) and TimeoutExpired raised."""
    with tempfile.TemporaryDirectory() as trace_dir:
        command = [*(launcher or [python]), str(DRIVER), "--trace_dir", trace_dir, *argv]
        process = Run(command, env=env or host_env(), cwd=cwd).finish(timeout)
        records = [json.loads(path.read_text()) for path in Path(trace_dir).glob("rank*.json")]
    return process, {record["rank"]: record for record in records}


# --- no process started by the suite outlives it ---------------------------------------------
# Every process the suite starts has PROCESS_MARK in its environment, and so has every process
# those start: also the workers of `accelerate launch --multi_gpu`, which torchrun starts each
# in a session of its own, so that killing the launch (or its process group) on a timeout left
# them running. The mark finds them wherever they are, and only them.
PROCESS_MARK = "SDSCHED_TESTS_RUN"
SESSION_MARK = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
os.environ[PROCESS_MARK] = SESSION_MARK  # a plain subprocess.run of any test inherits it too
_run_numbers = itertools.count()


def marked_processes(mark: str = SESSION_MARK) -> list[int]:
    """The live processes whose environment holds ``PROCESS_MARK=mark`` (or a run's ``mark.N``).
    An exited process (a zombie too) shows an empty environment and is not listed."""
    wanted = f"{PROCESS_MARK}={mark}".encode()
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as handle:
                variables = handle.read().split(b"\0")
        except OSError:  # gone meanwhile, or not ours to read
            continue
        if any(variable == wanted or variable.startswith(wanted + b".") for variable in variables):
            found.append(int(entry))
    return found


def end_processes(mark: str = SESSION_MARK) -> list[int]:
    """SIGKILL every process with the mark, again until none is left (one may have started
    another meanwhile); returns the PIDs ended."""
    ended = []
    for _ in range(200):
        pids = marked_processes(mark)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        ended.extend(pid for pid in pids if pid not in ended)
        time.sleep(0.05)
    return ended


class Run:
    """A command started in a session of its own, with a mark of its own (``SESSION_MARK.N``)."""

    def __init__(self, command, env=None, cwd=None):
        self.mark = f"{SESSION_MARK}.{next(_run_numbers)}"
        environment = dict(os.environ if env is None else env)
        environment[PROCESS_MARK] = self.mark
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment, cwd=cwd, start_new_session=True
        )

    def finish(self, timeout) -> subprocess.CompletedProcess:
        """Wait for the command; on a timeout end every process of the run, then raise
        TimeoutExpired. Whatever the command left running when it ended is ended too."""
        try:
            out, err = self.process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.end()
            out, err = self.process.communicate()  # every writer of the pipes is gone now
            raise subprocess.TimeoutExpired(self.process.args, timeout, out, err) from None
        finally:
            self.end()
        return subprocess.CompletedProcess(self.process.args, self.process.returncode, out, err)

    def end(self) -> None:
        if self.process.poll() is None:  # the group id is ours only while its leader is not reaped
            os.killpg(self.process.pid, signal.SIGKILL)
        end_processes(self.mark)


@pytest.fixture(scope="session", autouse=True)
def no_process_outlives_the_suite():
    """Ends whatever a test left running (a Run never finished, a child of a plain subprocess)."""
    yield
    end_processes(SESSION_MARK)


atexit.register(end_processes, SESSION_MARK)  # an interrupted session too


@pytest.fixture(scope="session")
def plugin_wheel(tmp_path_factory) -> Path:
    """The wheel built from this checkout, once per session."""
    root = tmp_path_factory.mktemp("dist")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(root), str(REPO)], check=True)
    return next(root.glob("sdsched_plugin-*.whl"))


@pytest.fixture(scope="session")
def wheel_venv(tmp_path_factory, plugin_wheel):
    """A fresh venv with the wheel built from this checkout. torch and the rest come from the
    test environment through a plain path line (a path added that way is not scanned for
    .pth files, so the test environment's own copy of the plugin stays inactive)."""
    root = tmp_path_factory.mktemp("wheel")
    wheel = plugin_wheel
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


def assert_two_cycles_floored_at_half(scheduler, optimizer, lr):
    """cosine_with_restarts_floor, min 0.5, 2 cycles, 30 steps on 2 processes (60 scheduler steps), warmup
    0.1 (6): the LRs of both param groups (lr and lr / 2) against the formula, past the end too."""
    import math

    from sdsched_plugin.schedulers import CosineWithRestartsFloor

    assert isinstance(scheduler, CosineWithRestartsFloor)
    assert (scheduler.sdsched["num_training_steps"], scheduler.sdsched["num_warmup_steps"]) == (60, 6)
    for step, (unet, te) in enumerate(lr_trace(scheduler, optimizer, 61)):
        if step < 6:
            want = step / 6
        elif step >= 60:
            want = 0.5
        else:
            want = 0.5 + 0.25 * (1 + math.cos(math.pi * ((2 * (step - 6) / 54) % 1.0)))
        assert unet == pytest.approx(lr * want) and te == pytest.approx(lr / 2 * want)
