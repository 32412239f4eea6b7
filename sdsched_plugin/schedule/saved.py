"""The schedule as it travels with a model: written into the metadata of every model the trainer
saves, read back by ``sdsched preview --from``.

One job: turn the run's arguments and the built scheduler's settings into one JSON text under
our own metadata key (``KEY``; sd-scripts' ``ss_`` keys are never touched), and turn a model's
metadata back into the flags that preview the same schedule: exactly from our key, or from
sd-scripts' own ``ss_`` keys with the settings they do not record named as assumptions. Standard
library only (``json``); reading the file's header is ``run.model_file``'s job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from . import arguments

KEY = "sdsched_schedule"
FORMAT = 1

# The arguments that shape the schedule, its length and the param groups' base LRs: saved as
# training read them, so that `sdsched preview --from` reads the very same flags.
SAVED_FLAGS = (
    "lr_scheduler", "lr_scheduler_type", "lr_scheduler_args", "lr_warmup_steps", "lr_decay_steps",
    "lr_scheduler_num_cycles", "lr_scheduler_power", "lr_scheduler_timescale", "lr_scheduler_min_lr_ratio",
    *sorted(set(arguments.KEY_DESTS.values()) - {"lr_scheduler_num_cycles", "lr_scheduler_power"}),
    "max_train_steps", "gradient_accumulation_steps", "optimizer_type",
    "learning_rate", "unet_lr", "text_encoder_lr", "network_module", "network_args",
    "network_train_unet_only", "network_train_text_encoder_only",
)  # fmt: skip


def _plain(value):
    """A value as JSON holds it: numbers, text, flags and lists of them; anything else as text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return str(value)


def flags_of(args, steps: int | None = None) -> dict:
    """The saved flags' values in ``args`` (typed, as the parser read them), with ``max_train_steps``
    the run's length in updates where it is known (an epoch-based run's count)."""
    flags = {dest: _plain(getattr(args, dest)) for dest in SAVED_FLAGS if getattr(args, dest, None) not in (None, False, [], "")}
    if steps:
        flags["max_train_steps"] = steps
    return flags


def record_of(args, settings: dict, num_processes: int, version: str) -> str:
    """The text saved under ``KEY``: the flags as training read them (``max_train_steps`` is the
    run's length in updates, epochs already turned into steps by the trainer), the settings the
    scheduler was built with (steps in scheduler steps: updates x processes), the process count
    and the plugin's version."""
    flags = flags_of(args)
    record = {
        "format": FORMAT,
        "made_by": f"sdsched-plugin {version}",
        "schedule": {key: _plain(value) for key, value in settings.items()},
        "num_processes": num_processes,
        "flags": flags,
    }
    return json.dumps(record, sort_keys=True)


@dataclass
class Read:
    """What a model's metadata says of its schedule: the preview's flags and what was assumed."""

    argv: list[str]  # sd-scripts flags for the preview
    num_processes: int = 1
    steps_per_epoch: int | None = None
    source: str = KEY  # KEY, or "ss_ keys"
    assumed: list[str] = field(default_factory=list)  # "English / 日本語" lines
    made_by: str = ""


def argv_of(flags: dict) -> list[str]:
    """``{"lr_scheduler": "cosine", "network_train_unet_only": True, "text_encoder_lr": [1e-5]}`` ->
    ``["--lr_scheduler=cosine", "--network_train_unet_only", "--text_encoder_lr", "1e-05"]``."""
    argv = []
    for dest, value in flags.items():
        if value is True:
            argv.append(f"--{dest}")
        elif isinstance(value, list):
            argv += [f"--{dest}", *(str(item) for item in value)] if value else []
        elif value not in (None, False):
            argv.append(f"--{dest}={value}")
    return argv


def read_record(text: str) -> Read:
    record = json.loads(text)
    if not isinstance(record, dict) or not isinstance(record.get("flags"), dict):
        raise ValueError(f"{KEY} is not a record of sdsched-plugin")
    return Read(argv_of(record["flags"]), int(record.get("num_processes") or 1), made_by=str(record.get("made_by", "")))


# sd-scripts' own keys (train_network.py's metadata; every value saved as text) -> our flag
SS_FLAGS = {
    "ss_lr_scheduler": "lr_scheduler",
    "ss_lr_warmup_steps": "lr_warmup_steps",
    "ss_max_train_steps": "max_train_steps",
    "ss_gradient_accumulation_steps": "gradient_accumulation_steps",
    "ss_learning_rate": "learning_rate",
    "ss_unet_lr": "unet_lr",
    "ss_text_encoder_lr": "text_encoder_lr",
    "ss_network_module": "network_module",
}
# What sd-scripts does not record, and what the preview then takes (the parser's defaults):
# for every schedule, and for the names whose curve the setting shapes.
NOT_RECORDED = ("--num_processes=1", "no --lr_scheduler_args")
NOT_RECORDED_BY_NAME = {
    "cosine_with_restarts": ("--lr_scheduler_num_cycles=1",),
    "polynomial": ("--lr_scheduler_power=1.0",),
    "cosine_with_min_lr": ("--lr_scheduler_num_cycles=1", "--lr_scheduler_min_lr_ratio of sd-scripts' default"),
    "warmup_stable_decay": ("no --lr_decay_steps", "--lr_scheduler_min_lr_ratio of sd-scripts' default"),
    "inverse_sqrt": ("--lr_scheduler_timescale = the warmup steps",),
}


def _ss_value(text: str):
    """sd-scripts saves ``str(value)``: "None", "1e-05", "[5e-05, 1e-05]", "10"."""
    text = text.strip()
    if text in ("None", ""):
        return None
    if text.startswith("[") and text.endswith("]"):
        return [item.strip() for item in text[1:-1].split(",") if item.strip() and item.strip() != "None"]
    return text


def read_ss_keys(metadata: dict) -> Read:
    """The schedule from sd-scripts' ``ss_`` keys alone: the name, warmup, length and LRs it
    records; the rest assumed, each assumption named."""
    flags = {}
    for key, dest in SS_FLAGS.items():
        value = _ss_value(str(metadata.get(key, "None")))
        if value is not None and value != []:
            flags[dest] = value
    if "network_module" not in flags:
        flags["network_module"] = ""  # a full model: one param group
    read = Read(argv_of(flags), source="ss_ keys")
    name = str(flags.get("lr_scheduler", "")).removesuffix("_floor")
    assumed = ", ".join((*NOT_RECORDED_BY_NAME.get(name, ()), *NOT_RECORDED))
    read.assumed = [f"not recorded by sd-scripts, assumed: {assumed} / sd-scripts の記録にないため次を仮定します: {assumed}"]
    return read


def steps_per_epoch_of(metadata: dict) -> int | None:
    """Updates per epoch from sd-scripts' keys: its batches per epoch (per process, as its
    dataloader counts them) over the gradient accumulation; None where they are not recorded."""
    batches = str(metadata.get("ss_num_batches_per_epoch", ""))
    accumulation = str(metadata.get("ss_gradient_accumulation_steps", "1"))
    if batches.isdigit() and int(batches) > 0 and accumulation.isdigit() and int(accumulation) > 0:
        return -(-int(batches) // int(accumulation))
    return None


def is_sd_scripts_model(metadata: dict) -> bool:
    return "ss_lr_scheduler" in metadata and "ss_max_train_steps" in metadata


def to_toml(flags: dict) -> str:
    """The schedule part (``flags_of``) as sd-scripts TOML keys, flat, as read_config_from_file reads them."""
    lines = []
    for dest, value in flags.items():
        if value is None or value is False or value == "":
            continue
        lines.append(f"{dest} = {json.dumps(value)}")  # JSON's numbers, strings, lists and true are TOML's too
    return "\n".join(lines) + "\n"
