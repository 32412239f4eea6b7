"""Where a resumed run picks up: sd-scripts' ``--resume`` folder (accelerate's saved state), or an
update number.

One job: ``read(value)`` -> ``State``. The folder's ``train_state.json`` (sd-scripts writes it
beside accelerate's files) gives the update the run continues at; ``scheduler.bin`` (accelerate's
``torch.save`` of the scheduler's ``state_dict``) gives the scheduler's step and, when the plugin
built it, the settings it was built with. Only those two files are read, never the model or the
optimizer; torch is imported for ``scheduler.bin`` alone (plain values, ``weights_only``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field

from ..schedule.options import OptionError

FLAG = "--resume"


@dataclass
class State:
    update: int | None  # the update the run continues at (sd-scripts' current_step)
    scheduler_step: int | None = None  # the scheduler's last_epoch (updates x processes)
    settings: dict | None = None  # what the plugin built the saved schedule with; None: sd-scripts' own
    base_lrs: list = field(default_factory=list)
    where: str = ""


def read(value: str) -> State:
    if str(value).isdigit():
        return State(int(value), where=str(value))
    if not os.path.isdir(value):
        raise OptionError(FLAG, value, "a state folder saved with --save_state, or the update to resume at", "--save_state で保存した状態のフォルダか、再開する更新回数を指定してください")
    state = State(None, where=value)
    train_state = os.path.join(value, "train_state.json")
    if os.path.isfile(train_state):
        with open(train_state, encoding="utf-8") as f:
            state.update = int(json.load(f).get("current_step", 0))
    scheduler = os.path.join(value, "scheduler.bin")
    if os.path.isfile(scheduler):
        saved = _load(scheduler)
        state.scheduler_step = saved.get("last_epoch")
        state.settings = saved.get("sdsched")
        state.base_lrs = list(saved.get("base_lrs") or [])
    if state.update is None and state.scheduler_step is None:
        raise OptionError(FLAG, value, "a state folder saved by sd-scripts (train_state.json or scheduler.bin)", "sd-scripts が保存した状態のフォルダ(train_state.json か scheduler.bin)を指定してください")
    return state


def _load(path: str) -> dict:
    import torch  # scheduler.bin is torch's pickle; its values are plain numbers and texts

    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise OptionError(FLAG, path, f"a scheduler state that can be read ({type(error).__name__})", "読める scheduler.bin を指定してください") from None
    return saved if isinstance(saved, dict) else {}
