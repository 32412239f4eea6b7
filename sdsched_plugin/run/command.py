"""Reading a pasted training command: which script, with which arguments, on how many
processes. Standard library only.

``sdsched preview -- accelerate launch --num_processes=2 ... train_network.py --config_file=...``
takes the command as the kohya_ss GUI's "Print training command" shows it (also ``python
train_network.py ...``, ``python -m accelerate.commands.launch ...`` and ``torchrun``). The
script is the first ``.py`` argument; what comes before it is the launcher, whose flags give
the process count the way accelerate itself decides it: ``--num_processes``, else the
``num_processes`` of the accelerate config file (``--config_file`` before the script, or the
default one that ``accelerate config`` writes), else 1.
"""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

from ..schedule.options import OptionError
from . import locate


@dataclass(frozen=True)
class TrainingCommand:
    script: Path
    script_args: list[str] = field(default_factory=list)
    num_processes: int = 1
    launcher: list[str] = field(default_factory=list)
    processes_from: str = "default"  # where the process count came from, for the output


def tokens_of(argv: list[str]) -> list[str]:
    """The command as tokens: already split by the shell, or pasted as one quoted string."""
    if len(argv) == 1 and " " in argv[0].strip():
        return shlex.split(argv[0], posix=os.name != "nt")
    return list(argv)


def _flag_value(tokens: list[str], names: tuple[str, ...]) -> str | None:
    """The value of ``--name VALUE`` or ``--name=VALUE`` (the last one wins, as in argparse)."""
    value = None
    for index, token in enumerate(tokens):
        for name in names:
            if token == name and index + 1 < len(tokens):
                value = tokens[index + 1]
            elif token.startswith(name + "="):
                value = token[len(name) + 1 :]
    return value


def default_accelerate_config() -> Path:
    """Where ``accelerate config`` saves its default file (HF_HOME or the cache folder)."""
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "huggingface")
    return Path(home) / "accelerate" / "default_config.yaml"


def processes_in_config(path: Path) -> int | None:
    """``num_processes: N`` of an accelerate YAML/JSON config, read without a YAML library."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return None
    match = re.search(r'^\s*"?num_processes"?\s*:\s*(\d+)', text, re.MULTILINE)
    return int(match.group(1)) if match else None


def _process_count(launcher: list[str]) -> tuple[int, str]:
    if not launcher:
        return 1, "default"
    names = [Path(token).name.lower().removesuffix(".exe") for token in launcher]
    if "torchrun" in names or "torch.distributed.run" in launcher:
        value = _flag_value(launcher, ("--nproc_per_node", "--nproc-per-node"))
        nodes = _flag_value(launcher, ("--nnodes",)) or "1"
        if value and value.isdigit() and nodes.isdigit():
            return int(value) * int(nodes), "torchrun --nproc_per_node"
        return 1, "default"
    value = _flag_value(launcher, ("--num_processes", "--num-processes"))
    if value is not None:
        if not value.isdigit() or int(value) < 1:
            raise OptionError("--num_processes", value, "a whole number >= 1", "1 以上の整数を指定してください")
        return int(value), "accelerate --num_processes"
    if "--cpu" in launcher:  # accelerate launch --cpu without --num_processes runs one process
        return 1, "accelerate --cpu"
    config = _flag_value(launcher, ("--config_file", "--config-file"))
    path = Path(config) if config else default_accelerate_config()
    count = processes_in_config(path)
    if count is not None:
        return count, f"accelerate config {path}"
    return 1, "default"


def read_command(argv: list[str]) -> TrainingCommand:
    """Split a training command into launcher, script and the script's arguments."""
    tokens = tokens_of(argv)
    for index, token in enumerate(tokens):
        if token.lower().endswith(".py"):
            launcher, script_args = tokens[:index], tokens[index + 1 :]
            count, source = _process_count(launcher)
            return TrainingCommand(Path(token.replace("\\", "/")), script_args, count, launcher, source)
    raise OptionError(
        "--",
        " ".join(tokens)[:120],
        "a training command with its script, e.g. -- accelerate launch --num_processes=1 train_network.py --config_file=config.toml",
        "学習スクリプトを含むコマンド(例: -- accelerate launch --num_processes=1 train_network.py --config_file=config.toml)",
    )


# musubi-tuner's *_train_network.py -> the architecture its latent caches are named after
# (dataset/architectures.py); --architecture overrides it (Qwen-Image Edit "qie", FLUX.2 ...).
MUSUBI_ARCHITECTURES = {
    "hv": "hv", "hv_1_5": "hv15", "wan": "wan", "fpack": "fp", "flux_kontext": "fk", "qwen_image": "qi",
    "kandinsky5": "k5", "zimage": "zi", "hidream_o1": "ho1", "ideogram4": "i4", "krea2": "kr2", "flux_2": "f2d",
}  # fmt: skip


def is_musubi(script: Path) -> bool:
    """A musubi-tuner script: it lives in a ``musubi_tuner`` package (``src/musubi_tuner/``)."""
    return "musubi_tuner" in script.parts or (script.parent / "dataset" / "architectures.py").is_file()


def musubi_architecture(script: Path) -> str | None:
    stem = script.stem.removesuffix("_train_network")
    return MUSUBI_ARCHITECTURES.get(stem)


def find_sd_scripts(script: Path | None = None) -> Path | None:
    """The sd-scripts checkout to read the run with (``locate.find_sd_scripts``: the same one
    ``sdsched doctor`` checks)."""
    found, _ = locate.find_sd_scripts(script)
    return found.home if found is not None else None
