"""What the pure counters share (``layout`` for sd-scripts' datasets, ``musubi`` for
musubi-tuner's caches): reading the parsed arguments or a mapping, a dataset config file, the
TOML-then-command-line lookup, checked values, image sizes from file headers, the notes of a
count and its RunCount. Standard library and ``imagesize`` only (pure Python, what sd-scripts
itself reads image sizes with); must not import torch, numpy, PIL or sd-scripts.
"""

from __future__ import annotations

import json
import os
import random
import struct
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..schedule.options import OptionError
from ..schedule.steps import RunCount, run_count

# train_util.IMAGE_EXTENSIONS without the optional plugins (pillow-avif-plugin, jxlpy / pillow-jxl)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".PNG", ".JPG", ".JPEG", ".WEBP", ".BMP")
PLUGIN_EXTENSIONS = (".avif", ".AVIF", ".jxl", ".JXL")
# sd-scripts' argparse defaults for the values the count depends on
DEFAULTS = {
    "train_batch_size": 1,
    "max_train_steps": 1600,
    "max_train_epochs": None,
    "gradient_accumulation_steps": 1,
    "resolution": None,
    "enable_bucket": False,
    "min_bucket_reso": 256,
    "max_bucket_reso": 1024,
    "bucket_reso_steps": 64,
    "bucket_no_upscale": False,
    "dataset_repeats": 1,
    "train_data_dir": None,
    "reg_data_dir": None,
    "in_json": None,
    "dataset_config": None,
    "dataset_class": None,
    "masked_loss": False,
    "seed": None,
    "validation_split": 0.0,
    "validation_seed": None,
}


def note(en: str, ja: str) -> str:
    return f"{en} / {ja}"


def image_size(path: str) -> tuple[int, int] | None:
    """(width, height) from the file header, read by the ``imagesize`` package as sd-scripts'
    ``get_image_size`` reads it (the format told by the content; the EXIF orientation as the venv's
    imagesize has it: 1.x, which sd-scripts pins, ignores it, 2.x applies it);
    None when it cannot. Where imagesize gives up, sd-scripts asks PIL; of the formats it always
    accepts that is BMP only (imagesize 1.4 does not know it), read here from its header."""
    import imagesize  # pure Python; only when a dataset is counted from its files

    try:
        width, height = imagesize.get(path)
        if width > 0 and height > 0:
            return width, height
        return _bmp_size(path)
    except (OSError, ValueError, struct.error):
        return None


def _bmp_size(path: str) -> tuple[int, int] | None:
    with open(path, "rb") as f:
        head = f.read(26)
    if head.startswith(b"BM") and len(head) >= 26:
        width, height = struct.unpack("<ll", head[18:26])
        return (width, abs(height)) if width > 0 and height else None  # a negative height is a top-down bitmap
    return None


def arg_value(args: Any, name: str) -> Any:
    if isinstance(args, Mapping):
        value = args.get(name, DEFAULTS.get(name))
    else:
        value = getattr(args, name, DEFAULTS.get(name))
    return DEFAULTS.get(name) if value is None else value


def resolution_of(value: Any, flag: str) -> tuple[int, int] | None:
    """``"512"``, ``"512,768"`` (the command line), 512 or [512, 768] (TOML), or a tuple."""
    if value is None:
        return None
    en = "a size or width,height in pixels, e.g. 512 or 512,768"
    ja = "解像度は「サイズ」または「幅,高さ」で指定してください(例: 512 や 512,768)"
    try:
        if isinstance(value, str):
            parts = [int(part) for part in value.split(",")]
        elif isinstance(value, (list, tuple)):
            parts = [_whole(part) for part in value]
        else:
            parts = [_whole(value)]
    except (TypeError, ValueError):
        raise OptionError(flag, value, en, ja) from None
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) <= 0:
        raise OptionError(flag, value, en, ja)
    return parts[0], parts[1]


def _whole(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(value)
    return value


def read_toml(path: str) -> dict:
    """A TOML file read as sd-scripts reads its configs: with the ``toml`` package (in every
    sd-scripts venv; it differs from the standard library's reader at the edges, e.g. arrays of
    mixed types), else with ``tomllib``. Raises OSError, or ValueError with the line."""
    try:
        import toml
    except ImportError:
        import tomllib  # Python 3.11+

        with open(path, "rb") as f:
            return tomllib.load(f)
    with open(path, encoding="utf-8") as f:
        return toml.load(f)


def load_config(path: str) -> dict:
    flag = "--dataset_config"
    if not os.path.isfile(path):
        raise OptionError(flag, str(path), "an existing .toml or .json file", "存在する .toml か .json ファイルを指定してください")
    name = str(path).lower()
    try:
        if name.endswith(".json"):
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        if name.endswith(".toml"):
            return read_toml(path)
    except (ValueError, UnicodeDecodeError) as error:  # JSONDecodeError, TOMLDecodeError, toml's TomlDecodeError
        raise OptionError(
            flag, str(path), f"a valid TOML / JSON file ({error})", f"TOML / JSON の書式が正しくありません({error})"
        ) from None
    raise OptionError(flag, str(path), "a .toml or .json file", ".toml か .json ファイルを指定してください")


@dataclass
class State:
    notes: list[str] = field(default_factory=list)
    estimate: bool = False
    split_rng: random.Random | None = None

    def note(self, en: str, ja: str, estimate: bool = True) -> None:
        text = note(en, ja)
        if text not in self.notes:
            self.notes.append(text)
        self.estimate = self.estimate or estimate


def lookup(key: str, layers: Iterable[Mapping], default: Any) -> Any:
    # BlueprintGenerator.search_value: the first layer with a value that is not None
    for layer in layers:
        value = layer.get(key)
        if value is not None:
            return value
    return default


def checked(value: Any, kind: type, flag: str, minimum: int | None = None) -> Any:
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if kind is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and minimum is not None and value < minimum:
        ok = False
    if not ok:
        en = {bool: "true or false", int: "a whole number", float: "a number", str: "a string"}[kind]
        ja = {bool: "true か false", int: "整数", float: "数値", str: "文字列"}[kind]
        if minimum is not None:
            en, ja = f"{en} >= {minimum}", f"{minimum} 以上の{ja}"
        raise OptionError(flag, value, en, ja)
    return value


@dataclass(frozen=True)
class RunFlags:
    """What sets a run's length besides its datasets, read and checked as the trainers read them."""

    processes: int
    accumulation: int
    epochs: int | None  # --max_train_epochs (it overrides --max_train_steps)
    steps: int


def read_run_flags(args: Any, num_processes: int) -> RunFlags:
    epochs = arg_value(args, "max_train_epochs")
    return RunFlags(
        processes=checked(num_processes, int, "--num_processes", 1),
        accumulation=checked(arg_value(args, "gradient_accumulation_steps"), int, "--gradient_accumulation_steps", 1),
        epochs=None if epochs is None else checked(epochs, int, "--max_train_epochs", 1),
        steps=checked(arg_value(args, "max_train_steps"), int, "--max_train_steps", 1),
    )


def run_count_of(datasets, batches, flags: RunFlags, state, source: str) -> RunCount:
    """The RunCount of datasets counted here."""
    return run_count(
        batches, flags.processes, flags.accumulation, flags.epochs, flags.steps,
        num_train_images=sum(d.num_train_images for d in datasets),
        num_reg_images=sum(d.num_reg_images for d in datasets),
        source=source, estimate=state.estimate, notes=tuple(state.notes), datasets=tuple(datasets),
    )  # fmt: skip
