"""Counting a training run's steps from its dataset, the way sd-scripts counts them. Standard library only.

This is the fallback for when sd-scripts itself cannot be imported (``sd_scripts.count_run`` asks
sd-scripts' own dataset code, and is the truth when it can). It replays, without PIL, numpy or
torch, what sd-scripts does before it loads a model:

- ``config_util.generate_dreambooth_subsets_config_by_subdirs``: ``--train_data_dir`` /
  ``--reg_data_dir`` folders named ``N_name`` are subsets repeated N times;
- ``config_util.BlueprintGenerator``: a ``--dataset_config`` TOML / JSON: ``[general]``,
  ``[[datasets]]``, ``[[datasets.subsets]]``; each value is looked up in the subset, then its
  dataset, then ``[general]``, then the command line;
- ``train_util.DreamBoothDataset``: images found by extension in each subset folder; the
  regularization images are repeated until they match the training images (one more repeat per
  image, in folder order, until the counts are equal);
- ``train_util.FineTuningDataset``: ``--in_json`` / ``metadata_file`` (sizes from ``image_size``
  in the metadata, else from the image file);
- ``BaseDataset.make_buckets`` / ``BucketManager``: each image goes to a bucket (the predefined
  resolutions of ``model_util.make_bucket_resolutions``, or its own with ``bucket_no_upscale``),
  repeats included; a dataset yields ``ceil(images in bucket / batch_size)`` batches per bucket;
- ``train_network.py``: ``max_train_steps = epochs * ceil(batches / processes / accumulation)``,
  ``steps per epoch = ceil(ceil(batches / processes) / accumulation)``.

Image sizes come from the file headers (PNG, JPEG, WebP, BMP: the formats sd-scripts always
accepts), read by the ``imagesize`` package that sd-scripts itself uses (``dataset_config.image_size``). Where the count
cannot be exact (an unreadable image, a random validation split over several buckets, AVIF/JPEG-XL
files that sd-scripts only reads with an optional plugin), ``RunCount.estimate`` is True and a
note says why, in English and Japanese. Must not import torch, numpy, PIL or sd-scripts; the readers
it shares with ``musubi`` are in ``dataset_config``.
"""

from __future__ import annotations

import json
import math
import os
import random
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from ..schedule.options import OptionError
from ..schedule.steps import DatasetCount, RunCount
from .dataset_config import (
    DEFAULTS, IMAGE_EXTENSIONS, PLUGIN_EXTENSIONS, State, arg_value, checked, image_size, load_config, lookup, read_run_flags,
    resolution_of, run_count_of,
)  # fmt: skip

# DreamBoothDatasetParams / FineTuningDatasetParams defaults (config_util), used when neither the
# TOML nor the command line gives the value
DATASET_DEFAULTS = {
    "batch_size": 1,
    "resolution": None,
    "enable_bucket": False,
    "min_bucket_reso": 256,
    "max_bucket_reso": 1024,
    "bucket_reso_steps": 64,
    "bucket_no_upscale": False,
    "validation_split": 0.0,
    "validation_seed": None,
}
SUBSET_DEFAULTS = {"image_dir": None, "num_repeats": 1, "is_reg": False, "cache_info": False, "metadata_file": None}
# command-line names that the TOML spells differently (ConfigSanitizer.ARGPARSE_OPTNAME_TO_CONFIG_OPTNAME)
ARG_TO_CONFIG = {"train_batch_size": "batch_size", "dataset_repeats": "num_repeats"}


# ---------------------------------------------------------------------------------------------
# buckets: model_util.make_bucket_resolutions and train_util.BucketManager


def bucket_resolutions(max_reso: tuple[int, int], min_size: int = 256, max_size: int = 1024, divisible: int = 64) -> list[tuple[int, int]]:
    """model_util.make_bucket_resolutions: the predefined buckets, sorted."""
    max_width, max_height = max_reso
    max_area = max_width * max_height
    resos = set()
    width = int(math.sqrt(max_area) // divisible) * divisible
    resos.add((width, width))
    width = min_size
    while width <= max_size:
        height = min(max_size, int((max_area // width) // divisible) * divisible)
        if height >= min_size:
            resos.add((width, height))
            resos.add((height, width))
        width += divisible
    return sorted(resos)


class Buckets:
    """BucketManager.select_bucket with the counting that make_buckets does after it."""

    def __init__(self, no_upscale: bool, max_reso: tuple[int, int], reso_steps: int | None, predefined: list[tuple[int, int]] | None):
        self.no_upscale = no_upscale
        self.max_area = max_reso[0] * max_reso[1]
        self.reso_steps = reso_steps
        self.predefined = predefined or []
        self.predefined_set = set(self.predefined)
        self.predefined_ar = [w / h for w, h in self.predefined]
        self.counts: dict[tuple[int, int], int] = {}

    def _round(self, x: float) -> int:
        x = int(x + 0.5)
        return x - x % self.reso_steps

    def select(self, width: int, height: int) -> tuple[int, int]:
        aspect_ratio = width / height
        if not self.no_upscale:
            reso = (width, height)
            if reso not in self.predefined_set:
                # np.abs(ar_errors).argmin(): the first of the smallest errors
                errors = [abs(ar - aspect_ratio) for ar in self.predefined_ar]
                reso = self.predefined[errors.index(min(errors))]
            return reso
        if width * height > self.max_area:
            resized_width = math.sqrt(self.max_area * aspect_ratio)
            resized_height = self.max_area / resized_width
            b_width_rounded = self._round(resized_width)
            b_height_in_wr = self._round(b_width_rounded / aspect_ratio)
            ar_width_rounded = b_width_rounded / b_height_in_wr
            b_height_rounded = self._round(resized_height)
            b_width_in_hr = self._round(b_height_rounded * aspect_ratio)
            ar_height_rounded = b_width_in_hr / b_height_rounded
            if abs(ar_width_rounded - aspect_ratio) < abs(ar_height_rounded - aspect_ratio):
                resized = (b_width_rounded, int(b_width_rounded / aspect_ratio + 0.5))
            else:
                resized = (int(b_height_rounded * aspect_ratio + 0.5), b_height_rounded)
        else:
            resized = (width, height)
        return resized[0] - resized[0] % self.reso_steps, resized[1] - resized[1] % self.reso_steps

    def add(self, reso: tuple[int, int], repeats: int) -> None:
        self.counts[reso] = self.counts.get(reso, 0) + repeats


# ---------------------------------------------------------------------------------------------
# reading the inputs


def _repeat_folders(base: str | None, is_reg: bool) -> list[dict]:
    """config_util.generate_dreambooth_subsets_config_by_subdirs: subfolders named N_name, in
    the order the file system lists them (sd-scripts uses Path.iterdir)."""
    if base is None or not os.path.isdir(base):
        return []
    subsets = []
    for name in os.listdir(base):
        path = os.path.join(base, name)
        if not os.path.isdir(path):
            continue
        try:
            repeats = int(name.split("_")[0])
        except ValueError:
            continue  # sd-scripts: "ignore directory without repeats"
        if repeats >= 1:
            subsets.append({"image_dir": str(path), "num_repeats": repeats, "is_reg": is_reg})
    return subsets


def _glob_images(directory: str) -> tuple[list[str], list[str]]:
    """train_util.glob_images(directory, "*"): sorted paths with a known extension (case as
    listed on POSIX, any case on Windows, where glob ignores case); hidden files are not matched.
    Also the files sd-scripts reads only with an optional plugin."""
    found, plugin = [], []
    fold = os.name == "nt"
    exts = tuple(e.lower() for e in IMAGE_EXTENSIONS) if fold else IMAGE_EXTENSIONS
    plugin_exts = tuple(e.lower() for e in PLUGIN_EXTENSIONS) if fold else PLUGIN_EXTENSIONS
    for name in os.listdir(directory):
        if name.startswith("."):
            continue
        key = name.lower() if fold else name
        path = os.path.join(directory, name)
        if key.endswith(exts) and not os.path.isdir(path):
            found.append(path)
        elif key.endswith(plugin_exts):
            plugin.append(path)
    return sorted(found), sorted(plugin)


# ---------------------------------------------------------------------------------------------
# the count


@dataclass
class _Image:
    path: str
    repeats: int
    size: tuple[int, int] | None = None
    legacy_size: tuple[int, int] | None = None  # fine tuning: train_resolution


def _split(paths: list, split: float, seed: int | None, state: State, where: str) -> list:
    """train_util.split_train_val for the training side: shuffled with the validation seed (or
    the run's random state, seeded by --seed), the first ceil(n * (1 - split)) kept."""
    if seed is not None:
        rng = random.Random(seed)
    else:
        if state.split_rng is None:
            state.note(
                f"{where}: validation_split without validation_seed or --seed: which images are held out is random",
                f"{where}: validation_seed も --seed もない validation_split は検証用に分ける画像がランダムに決まります",
            )
            state.split_rng = random.Random()
        rng = state.split_rng
    paths = list(paths)
    rng.shuffle(paths)
    return paths[: math.ceil(len(paths) * (1 - split))]


def count(args: Any, num_processes: int = 1) -> RunCount:
    """Count the run that ``args`` (sd-scripts' parsed namespace, or a mapping with the same
    names: train_data_dir, reg_data_dir, in_json, dataset_config, resolution, train_batch_size,
    enable_bucket, min_bucket_reso, max_bucket_reso, bucket_reso_steps, bucket_no_upscale,
    dataset_repeats, max_train_steps, max_train_epochs, gradient_accumulation_steps, seed,
    validation_split, validation_seed, masked_loss) would train on ``num_processes`` processes."""
    state = State()
    if arg_value(args, "seed") is not None:
        # train_network.py seeds Python's random with --seed before it builds the datasets; a
        # validation split without validation_seed shuffles with it, dataset after dataset
        state.split_rng = random.Random(arg_value(args, "seed"))
    if arg_value(args, "dataset_class") is not None:
        raise OptionError(
            "--dataset_class",
            arg_value(args, "dataset_class"),
            "no custom dataset class: its length is known only to its own code",
            "独自のデータセットクラスは長さを数えられません",
        )
    flags = read_run_flags(args, num_processes)

    user_config, where = _user_config(args)
    arg_layer = _argparse_layer(args)
    general = user_config.get("general", {}) or {}
    datasets = []
    for index, dataset_config in enumerate(user_config.get("datasets", []) or []):
        datasets.append(_count_dataset(index, dataset_config, general, arg_layer, where, state))

    batches = sum(d.batches for d in datasets)
    if batches == 0:
        flag, value = where
        raise OptionError(
            flag,
            value,
            "a dataset with at least one image (train_data_dir is the parent of folders such as 10_name)",
            "画像が見つかりません(train_data_dir には 10_name のような画像フォルダの親フォルダを指定してください)",
        )
    if any(d.enable_bucket for d in datasets) and not state.estimate:
        state.note(
            "buckets replayed from sd-scripts' BucketManager with the image sizes in the file headers",
            "画像ファイルのヘッダーのサイズで sd-scripts の BucketManager と同じ bucket 分けをしました",
            estimate=False,
        )
    return run_count_of(datasets, batches, flags, state, "folder layout")


def _user_config(args: Any) -> tuple[dict, tuple[str, Any]]:
    """What train_network.py builds before BlueprintGenerator.generate: the --dataset_config file,
    or one dataset from --train_data_dir / --reg_data_dir (DreamBooth) or --in_json (fine tuning)."""
    config_path = arg_value(args, "dataset_config")
    if config_path is not None:
        config = load_config(str(config_path))
        if not isinstance(config, dict) or not isinstance(config.get("datasets", []), list):
            raise OptionError(
                "--dataset_config", str(config_path), "[[datasets]] tables with [[datasets.subsets]]", "[[datasets]] と [[datasets.subsets]] の表で書いてください"
            )
        return config, ("--dataset_config", str(config_path))
    check_folders(args)
    train_dir, reg_dir, in_json = arg_value(args, "train_data_dir"), arg_value(args, "reg_data_dir"), arg_value(args, "in_json")
    if in_json is None:
        if train_dir is None:
            raise OptionError(
                "--train_data_dir", None, "a folder, or --dataset_config", "フォルダか --dataset_config を指定してください"
            )
        subsets = _repeat_folders(str(train_dir), False) + _repeat_folders(reg_dir and str(reg_dir), True)
        return {"datasets": [{"subsets": subsets}]}, ("--train_data_dir", str(train_dir))
    if not os.path.isfile(str(in_json)):
        raise OptionError("--in_json", str(in_json), "an existing metadata .json file", "存在するメタデータ .json ファイルを指定してください")
    return {"datasets": [{"subsets": [{"image_dir": train_dir and str(train_dir), "metadata_file": str(in_json)}]}]}, (
        "--in_json",
        str(in_json),
    )


def check_folders(args: Any) -> None:
    """--train_data_dir / --reg_data_dir must be folders when no --dataset_config replaces them.
    Stricter than sd-scripts on purpose: it trains nothing ("No data found") without the first and
    silently trains without regularization images when the second is mistyped."""
    if arg_value(args, "dataset_config") is not None or arg_value(args, "in_json") is not None:
        return
    for flag in ("--train_data_dir", "--reg_data_dir"):
        folder = arg_value(args, flag[2:])
        if folder is not None and not os.path.isdir(str(folder)):
            raise OptionError(flag, str(folder), "an existing folder", "存在するフォルダを指定してください")


def _argparse_layer(args: Any) -> dict:
    layer = {}
    for name in DEFAULTS:
        value = arg_value(args, name)
        if name == "resolution":
            value = resolution_of(value, "--resolution")
        layer[ARG_TO_CONFIG.get(name, name)] = value
    return layer


@dataclass
class _Dataset:
    """One ``[[datasets]]`` entry as BlueprintGenerator resolves it: its subsets, kind and
    values (each looked up in the dataset, then ``[general]``, then the command line)."""

    flag: str  # how messages name it: "--dataset_config [[datasets]] #2", "--train_data_dir", ...
    subsets: list
    kind: str  # "dreambooth", "fine-tuning", "controlnet"
    layers: tuple  # (dataset, general, command line)
    batch_size: int
    resolution: tuple[int, int] | None
    enable_bucket: bool
    min_reso: int
    max_reso: int
    reso_steps: int
    no_upscale: bool
    validation_split: float
    validation_seed: int | None


def _kind_of(subsets: list, cfg_flag: str) -> str:
    with_metadata = ["metadata_file" in s for s in subsets]
    if any(with_metadata) and not all(with_metadata):
        raise OptionError(
            f"{cfg_flag} subsets",
            "metadata_file",
            "DreamBooth subsets and fine-tuning subsets (metadata_file) in separate datasets",
            "DreamBooth のサブセットと fine tuning のサブセット(metadata_file)は別々のデータセットにしてください",
        )
    if subsets and all("conditioning_data_dir" in s for s in subsets):
        return "controlnet"
    return "fine-tuning" if any(with_metadata) else "dreambooth"


def _read_dataset(index: int, config: Any, general: Mapping, arg_layer: Mapping, where) -> _Dataset:
    cfg_flag = f"{where[0]} [[datasets]] #{index + 1}" if where[0] == "--dataset_config" else where[0]
    if not isinstance(config, Mapping):
        raise OptionError(cfg_flag, config, "a table", "表([[datasets]])で書いてください")
    subsets = config.get("subsets", []) or []
    if not isinstance(subsets, list) or not all(isinstance(s, Mapping) for s in subsets):
        raise OptionError(f"{cfg_flag} subsets", subsets, "[[datasets.subsets]] tables", "[[datasets.subsets]] の表で書いてください")
    layers = (config, general, arg_layer)

    def value(key, kind_, minimum=None):
        found = lookup(key, layers, DATASET_DEFAULTS[key])
        in_file = key in config or key in general
        flag = f"{cfg_flag} {key}" if in_file else "--train_batch_size" if key == "batch_size" else f"--{key}"
        if key == "resolution":
            return resolution_of(found, flag)
        return None if found is None else checked(found, kind_, flag, minimum)

    return _Dataset(
        cfg_flag, subsets, _kind_of(subsets, cfg_flag), layers,
        batch_size=value("batch_size", int, 1), resolution=value("resolution", None), enable_bucket=value("enable_bucket", bool),
        min_reso=value("min_bucket_reso", int, 1), max_reso=value("max_bucket_reso", int, 1), reso_steps=value("bucket_reso_steps", int, 1),
        no_upscale=value("bucket_no_upscale", bool), validation_split=value("validation_split", float) or 0.0,
        validation_seed=value("validation_seed", int),
    )  # fmt: skip


@dataclass
class _Images:
    """What a dataset's __init__ registers: image_data (keyed by path, later entries replace
    earlier ones), the subsets' rows for the output, the image counts x repeats."""

    images: dict = field(default_factory=dict)
    rows: list = field(default_factory=list)
    num_train: int = 0
    num_reg: int = 0
    legacy: bool = False  # fine tuning, v0.9.1 and older: the buckets are the train_resolution values


def _check_bucket_range(d: _Dataset) -> None:
    """BaseDataset.adjust_min_max_bucket_reso_by_steps and its checks against the resolution."""
    if d.resolution is None:
        raise OptionError("--resolution", None, "a size or width,height, e.g. 512", "resolution(解像度)を指定してください(例: 512)")
    if not d.enable_bucket:
        return
    d.min_reso -= d.min_reso % d.reso_steps
    if d.max_reso % d.reso_steps:
        d.max_reso += d.reso_steps - d.max_reso % d.reso_steps
    if min(d.resolution) < d.min_reso:
        raise OptionError("--min_bucket_reso", d.min_reso, f"at most the resolution's shorter side ({min(d.resolution)})", f"解像度の短辺({min(d.resolution)})以下にしてください")
    if max(d.resolution) > d.max_reso:
        raise OptionError("--max_bucket_reso", d.max_reso, f"at least the resolution's longer side ({max(d.resolution)})", f"解像度の長辺({max(d.resolution)})以上にしてください")


def _buckets_of(d: _Dataset, found: _Images) -> Buckets:
    """make_buckets' BucketManager."""
    if found.legacy:
        # sd-scripts <= v0.9.1, metadata from prepare_buckets_latents.py: bucketing on, the
        # buckets are the train_resolution values, and every image is in its own
        d.enable_bucket = True
        d.resolution = d.resolution or (0, 0)
        return Buckets(False, d.resolution, None, sorted({image.size for image in found.images.values()}))
    if d.enable_bucket:
        predefined = None if d.no_upscale else bucket_resolutions(d.resolution, d.min_reso, d.max_reso, d.reso_steps)
        return Buckets(d.no_upscale, d.resolution, d.reso_steps, predefined)
    return Buckets(False, d.resolution, None, [d.resolution])


def _fill_buckets(d: _Dataset, images: Iterable, buckets: Buckets, state: State) -> None:
    """make_buckets: each image (x repeats) in the bucket select_bucket gives it."""
    off_size = []  # without buckets, images that are not the resolution
    for image in images:
        size = image.size if image.size is not None else image_size(image.path)
        if size is None or size[0] <= 0 or size[1] <= 0:
            state.note(
                f"cannot read the size of {image.path}: counted in the bucket of the base resolution",
                f"{image.path} のサイズを読めません: 基準解像度の bucket に数えました",
            )
            size = d.resolution
        reso = buckets.select(*size)
        if min(reso) <= 0:  # sd-scripts fails here too (a division by the bucket's side)
            raise OptionError(
                "--bucket_no_upscale", image.path, f"images at least bucket_reso_steps ({d.reso_steps}) pixels on each side",
                f"bucket_no_upscale では各辺が bucket_reso_steps({d.reso_steps})ピクセル以上の画像にしてください",
            )
        buckets.add(reso, image.repeats)
        if not d.enable_bucket and tuple(size) != tuple(d.resolution):
            off_size.append(image.path)
    if off_size:
        # BaseDataset.__getitem__ without buckets: a smaller image fails "image size is small", a
        # larger one "image too large" unless random_crop / face_crop_aug_range; cached latents
        # are resized instead
        w, h = d.resolution
        state.note(
            f"{d.flag}: buckets off and {len(off_size)} images are not {w}x{h} (e.g. {off_size[0]}): without "
            "--cache_latents sd-scripts stops at them during training; use --enable_bucket or resize them",
            f"{d.flag}: bucket なしで {w}x{h} でない画像が {len(off_size)} 枚あります(例: {off_size[0]})。"
            "--cache_latents なしでは学習中に sd-scripts が停止します。--enable_bucket を使うか画像をリサイズしてください",
            estimate=False,
        )


def _count_dataset(index: int, config: Any, general: Mapping, arg_layer: Mapping, where, state: State) -> DatasetCount:
    """One dataset of the group: its images by kind, then its buckets and batches."""
    d = _read_dataset(index, config, general, arg_layer, where)
    if d.kind == "fine-tuning":
        found = _fine_tuning(d, state)
        if d.validation_split > 0:
            state.note(
                f"{d.flag}: validation_split is ignored for fine-tuning datasets in this count",
                f"{d.flag}: fine tuning データセットの validation_split はこの計算では考慮していません",
            )
    else:
        found = _dreambooth(d, state)
    if not found.legacy:
        _check_bucket_range(d)
    buckets = _buckets_of(d, found)
    _fill_buckets(d, found.images.values(), buckets, state)
    return DatasetCount(
        kind=d.kind,
        batch_size=d.batch_size,
        resolution=d.resolution,
        enable_bucket=bool(d.enable_bucket),
        subsets=tuple(found.rows),
        num_train_images=found.num_train,
        num_reg_images=found.num_reg,
        buckets=tuple(sorted(buckets.counts.items())),
        batches=sum(math.ceil(n / d.batch_size) for n in buckets.counts.values()),
    )


def _subset_value(key, subset, layers, flag, kind_, minimum=None):
    value = lookup(key, (subset, *layers), SUBSET_DEFAULTS.get(key))
    if value is None:
        return None
    return checked(value, kind_, flag, minimum)


def _subset_images(image_dir: str, cache_info: bool, state: State) -> tuple[list[str], dict]:
    """The subset folder's images (paths, known sizes): ``metadata_cache.json`` with cache_info,
    else glob_images."""
    cache_file = os.path.join(image_dir, "metadata_cache.json")
    if cache_info and os.path.isfile(cache_file):
        with open(cache_file, encoding="utf-8") as f:
            metas = json.load(f)
        return list(metas), {path: tuple(meta["resolution"]) for path, meta in metas.items()}
    paths, plugin = _glob_images(image_dir)
    if plugin:
        state.note(
            f"{image_dir}: {len(plugin)} AVIF / JPEG-XL files not counted (sd-scripts reads them only with pillow-avif-plugin / pillow-jxl)",
            f"{image_dir}: AVIF / JPEG-XL ファイル {len(plugin)} 枚は数えていません(sd-scripts はプラグインがあるときだけ読みます)",
        )
    return paths, {}


def _balance_reg_images(found: _Images, reg_infos: list) -> None:
    """The reg images are registered in order, each with its folder's repeats, until they reach
    the training images; then each gets one more repeat in turn until they match."""
    n, first_loop = 0, True
    while n < found.num_train:
        for image in reg_infos:
            if first_loop:
                found.images[image.path] = image
                n += image.repeats
            else:
                image.repeats += 1
                n += 1
            if n >= found.num_train:
                break
        first_loop = False


def _dreambooth(d: _Dataset, state: State) -> _Images:
    """DreamBoothDataset.__init__ (ControlNetDataset delegates to it, without reg images)."""
    found = _Images()
    seen_dirs = []
    reg_infos: list[_Image] = []
    for number, subset in enumerate(d.subsets, 1):
        flag = f"{d.flag} subset #{number}"
        image_dir = _subset_value("image_dir", subset, (), f"{flag} image_dir", str)
        if image_dir is None:
            raise OptionError(f"{flag} image_dir", None, "the folder of the subset's images", "サブセットの画像フォルダを指定してください")
        repeats = _subset_value("num_repeats", subset, d.layers, f"{flag} num_repeats", int)
        is_reg = bool(_subset_value("is_reg", subset, (), f"{flag} is_reg", bool)) and d.kind != "controlnet"
        cache_info = _subset_value("cache_info", subset, d.layers, f"{flag} cache_info", bool)
        if repeats < 1:
            continue  # "ignore subset ...: num_repeats is less than 1"
        if image_dir in seen_dirs:
            continue  # "ignore duplicated subset": DreamBoothSubset.__eq__ compares image_dir
        if not os.path.isdir(image_dir):
            state.note(f"not a folder, skipped as sd-scripts does: {image_dir}", f"フォルダではないので sd-scripts と同様に無視しました: {image_dir}", estimate=False)
            continue
        paths, sizes = _subset_images(image_dir, cache_info, state)
        if d.validation_split > 0 and not is_reg:
            paths = _split(paths, d.validation_split, d.validation_seed, state, flag)
        if not paths:
            continue  # "ignore subset ...: no images found"
        if is_reg:
            found.num_reg += repeats * len(paths)
            reg_infos += [_Image(path, repeats, sizes.get(path)) for path in paths]
        else:
            found.num_train += repeats * len(paths)
            found.images.update((path, _Image(path, repeats, sizes.get(path))) for path in paths)
        seen_dirs.append(image_dir)
        found.rows.append((image_dir, len(paths), repeats, is_reg))
    if found.num_reg:
        _balance_reg_images(found, reg_infos)
    return found


def _read_metadata(metadata_file: str, flag: str) -> Mapping:
    """A metadata .json (an object of image keys) or .jsonl (one ``image_path`` entry a line)."""
    if not os.path.isfile(metadata_file):
        raise OptionError(flag if flag == "--in_json" else f"{flag} metadata_file", metadata_file, "an existing metadata file", "存在するメタデータファイルを指定してください")
    try:
        with open(metadata_file, encoding="utf-8") as f:
            if metadata_file.endswith(".jsonl"):
                metadata = {}
                for line in f:
                    entry = json.loads(line)
                    metadata[entry["image_path"]] = {k: v for k, v in entry.items() if k == "image_size"}
            else:
                metadata = json.load(f)
    except (ValueError, KeyError) as error:
        raise OptionError(flag, metadata_file, f"valid metadata JSON ({error})", f"メタデータの JSON が正しくありません({error})") from None
    if not isinstance(metadata, Mapping):
        raise OptionError(flag, metadata_file, "metadata: an object of image keys", "メタデータは画像キーのオブジェクトにしてください")
    return metadata


def _fine_tuning(d: _Dataset, state: State) -> _Images:
    """FineTuningDataset.__init__. v0.10 and later: sizes from ``image_size`` in the metadata, else
    the header of ``image_dir/key``. v0.9.1 and older: ``train_resolution`` (written by
    prepare_buckets_latents.py) is the bucket when every entry has one (``legacy``); the image is
    ``key``, or ``image_dir/key.<ext>`` (keys are file names without extension)."""
    found = _Images()
    seen = []
    legacy = True  # every entry has train_resolution and none has image_size
    for number, subset in enumerate(d.subsets, 1):
        flag = d.flag if d.flag == "--in_json" else f"{d.flag} subset #{number}"
        metadata_file = _subset_value("metadata_file", subset, (), f"{flag} metadata_file", str)
        image_dir = _subset_value("image_dir", subset, (), f"{flag} image_dir", str)
        repeats = _subset_value("num_repeats", subset, d.layers, f"{flag} num_repeats", int)
        if repeats < 1 or metadata_file in seen:
            continue
        metadata = _read_metadata(metadata_file, flag)
        if not metadata:
            continue
        for key, entry in metadata.items():
            entry = entry if isinstance(entry, Mapping) else {}
            size = entry.get("image_size")
            legacy = legacy and "train_resolution" in entry and size is None
            path = _metadata_image(key, image_dir)
            if size is None and path is None and "train_resolution" not in entry:
                state.note(f"no image for metadata entry {key}", f"メタデータの {key} の画像が見つかりません")
            found.images[key] = _Image(path or key, repeats, tuple(size) if size else None)
            if "train_resolution" in entry:
                found.images[key].legacy_size = tuple(entry["train_resolution"])
        found.num_train += len(metadata) * repeats
        seen.append(metadata_file)
        found.rows.append((metadata_file, len(metadata), repeats, False))
    found.legacy = legacy and bool(found.images)
    if found.legacy:
        for image in found.images.values():
            image.size = image.legacy_size
        state.note(
            "the metadata has train_resolution for every image: counted as sd-scripts v0.9.1 and older do, one bucket per train_resolution",
            "メタデータのすべての画像に train_resolution があります: sd-scripts v0.9.1 以前と同じく train_resolution ごとの bucket で数えました",
            estimate=False,
        )
    return found


def _metadata_image(key: str, image_dir: str | None) -> str | None:
    candidates = [os.path.join(image_dir, key)] if image_dir is not None and not os.path.isabs(key) else []
    candidates.append(key)
    if image_dir is not None:
        candidates += [os.path.join(image_dir, key + ext) for ext in IMAGE_EXTENSIONS]
    return next((path for path in candidates if os.path.isfile(path)), None)
