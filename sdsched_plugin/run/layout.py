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
from dataclasses import dataclass
from typing import Any, Mapping

from ..schedule.options import OptionError
from ..schedule.steps import DatasetCount, RunCount
from .dataset_config import (
    DEFAULTS, IMAGE_EXTENSIONS, PLUGIN_EXTENSIONS, State, arg_value, checked, image_size, load_config, lookup, resolution_of,
    run_count_of,
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
    processes = checked(num_processes, int, "--num_processes", 1)
    accumulation = checked(arg_value(args, "gradient_accumulation_steps"), int, "--gradient_accumulation_steps", 1)
    epochs_flag = arg_value(args, "max_train_epochs")
    if epochs_flag is not None:
        checked(epochs_flag, int, "--max_train_epochs", 1)
    steps_flag = checked(arg_value(args, "max_train_steps"), int, "--max_train_steps", 1)

    user_config, where = _user_config(args)
    arg_layer = _argparse_layer(args)
    general = user_config.get("general", {}) or {}
    datasets = []
    for index, dataset_config in enumerate(user_config.get("datasets", []) or []):
        datasets.append(_count_dataset(index, dataset_config, general, arg_layer, args, where, state))

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
    return run_count_of(datasets, batches, processes, accumulation, epochs_flag, steps_flag, state, "folder layout")


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


def _count_dataset(index: int, config: Any, general: Mapping, arg_layer: Mapping, args: Any, where, state: State) -> DatasetCount:
    cfg_flag = f"{where[0]} [[datasets]] #{index + 1}" if where[0] == "--dataset_config" else where[0]
    if not isinstance(config, Mapping):
        raise OptionError(cfg_flag, config, "a table", "表([[datasets]])で書いてください")
    subsets = config.get("subsets", []) or []
    if not isinstance(subsets, list) or not all(isinstance(s, Mapping) for s in subsets):
        raise OptionError(f"{cfg_flag} subsets", subsets, "[[datasets.subsets]] tables", "[[datasets.subsets]] の表で書いてください")
    with_metadata = ["metadata_file" in s for s in subsets]
    controlnet = all("conditioning_data_dir" in s for s in subsets)
    if any(with_metadata) and not all(with_metadata):
        raise OptionError(
            f"{cfg_flag} subsets",
            "metadata_file",
            "DreamBooth subsets and fine-tuning subsets (metadata_file) in separate datasets",
            "DreamBooth のサブセットと fine tuning のサブセット(metadata_file)は別々のデータセットにしてください",
        )
    kind = "controlnet" if controlnet and subsets else "dreambooth" if not any(with_metadata) else "fine-tuning"
    layers = (config, general, arg_layer)

    def dataset_value(key, kind_, minimum=None):
        value = lookup(key, layers, DATASET_DEFAULTS[key])
        in_file = key in config or key in general
        flag = f"{cfg_flag} {key}" if in_file else "--train_batch_size" if key == "batch_size" else f"--{key}"
        if key == "resolution":
            return resolution_of(value, flag)
        return None if value is None else checked(value, kind_, flag, minimum)

    batch_size = dataset_value("batch_size", int, 1)
    resolution = dataset_value("resolution", None)
    enable_bucket = dataset_value("enable_bucket", bool)
    min_reso = dataset_value("min_bucket_reso", int, 1)
    max_reso = dataset_value("max_bucket_reso", int, 1)
    reso_steps = dataset_value("bucket_reso_steps", int, 1)
    no_upscale = dataset_value("bucket_no_upscale", bool)
    validation_split = dataset_value("validation_split", float)
    validation_seed = dataset_value("validation_seed", int)

    images: dict[str, _Image] = {}  # image_data: keyed by path, later entries replace earlier ones
    subset_rows = []
    num_train = num_reg = 0
    legacy = False
    if kind == "fine-tuning":
        num_train, legacy = _fine_tuning(subsets, config, general, arg_layer, cfg_flag, images, subset_rows, state)
        if validation_split and validation_split > 0:
            state.note(
                f"{cfg_flag}: validation_split is ignored for fine-tuning datasets in this count",
                f"{cfg_flag}: fine tuning データセットの validation_split はこの計算では考慮していません",
            )
    else:
        num_train, num_reg = _dreambooth(
            subsets, config, general, arg_layer, cfg_flag, images, subset_rows, state,
            kind == "controlnet", validation_split or 0.0, validation_seed,
        )

    if resolution is None and not legacy:
        raise OptionError("--resolution", None, "a size or width,height, e.g. 512", "resolution(解像度)を指定してください(例: 512)")
    if enable_bucket and not legacy:
        # BaseDataset.adjust_min_max_bucket_reso_by_steps
        min_reso -= min_reso % reso_steps
        if max_reso % reso_steps:
            max_reso += reso_steps - max_reso % reso_steps
        if min(resolution) < min_reso:
            raise OptionError("--min_bucket_reso", min_reso, f"at most the resolution's shorter side ({min(resolution)})", f"解像度の短辺({min(resolution)})以下にしてください")
        if max(resolution) > max_reso:
            raise OptionError("--max_bucket_reso", max_reso, f"at least the resolution's longer side ({max(resolution)})", f"解像度の長辺({max(resolution)})以上にしてください")

    # make_buckets
    if legacy:
        # sd-scripts <= v0.9.1, metadata from prepare_buckets_latents.py: bucketing on, the
        # buckets are the train_resolution values, and every image is in its own
        enable_bucket = True
        resolution = resolution or (0, 0)
        buckets = Buckets(False, resolution, None, sorted({image.size for image in images.values()}))
    elif enable_bucket:
        predefined = None if no_upscale else bucket_resolutions(resolution, min_reso, max_reso, reso_steps)
        buckets = Buckets(no_upscale, resolution, reso_steps, predefined)
    else:
        buckets = Buckets(False, resolution, None, [resolution])
    off_size = []  # without buckets, images that are not the resolution
    for image in images.values():
        size = image.size if image.size is not None else image_size(image.path)
        if size is None or size[0] <= 0 or size[1] <= 0:
            state.note(
                f"cannot read the size of {image.path}: counted in the bucket of the base resolution",
                f"{image.path} のサイズを読めません: 基準解像度の bucket に数えました",
            )
            size = resolution
        reso = buckets.select(*size)
        if min(reso) <= 0:  # sd-scripts fails here too (a division by the bucket's side)
            raise OptionError(
                "--bucket_no_upscale", image.path, f"images at least bucket_reso_steps ({reso_steps}) pixels on each side",
                f"bucket_no_upscale では各辺が bucket_reso_steps({reso_steps})ピクセル以上の画像にしてください",
            )
        buckets.add(reso, image.repeats)
        if not enable_bucket and tuple(size) != tuple(resolution):
            off_size.append(image.path)
    if off_size:
        # BaseDataset.__getitem__ without buckets: a smaller image fails "image size is small", a
        # larger one "image too large" unless random_crop / face_crop_aug_range; cached latents
        # are resized instead
        w, h = resolution
        state.note(
            f"{cfg_flag}: buckets off and {len(off_size)} images are not {w}x{h} (e.g. {off_size[0]}): without "
            "--cache_latents sd-scripts stops at them during training; use --enable_bucket or resize them",
            f"{cfg_flag}: bucket なしで {w}x{h} でない画像が {len(off_size)} 枚あります(例: {off_size[0]})。"
            "--cache_latents なしでは学習中に sd-scripts が停止します。--enable_bucket を使うか画像をリサイズしてください",
            estimate=False,
        )
    batches = sum(math.ceil(n / batch_size) for n in buckets.counts.values())
    return DatasetCount(
        kind=kind,
        batch_size=batch_size,
        resolution=resolution,
        enable_bucket=bool(enable_bucket),
        subsets=tuple(subset_rows),
        num_train_images=num_train,
        num_reg_images=num_reg,
        buckets=tuple(sorted(buckets.counts.items())),
        batches=batches,
    )


def _subset_value(key, subset, layers, flag, kind_, minimum=None):
    value = lookup(key, (subset, *layers), SUBSET_DEFAULTS.get(key))
    if value is None:
        return None
    return checked(value, kind_, flag, minimum)


def _dreambooth(subsets, config, general, arg_layer, cfg_flag, images, rows, state, controlnet, split, split_seed):
    """DreamBoothDataset.__init__ (ControlNetDataset delegates to it, without reg images)."""
    layers = (config, general, arg_layer)
    seen_dirs = []
    reg_infos: list[_Image] = []
    num_train = num_reg = 0
    for number, subset in enumerate(subsets, 1):
        flag = f"{cfg_flag} subset #{number}"
        image_dir = _subset_value("image_dir", subset, (), f"{flag} image_dir", str)
        if image_dir is None:
            raise OptionError(f"{flag} image_dir", None, "the folder of the subset's images", "サブセットの画像フォルダを指定してください")
        repeats = _subset_value("num_repeats", subset, layers, f"{flag} num_repeats", int)
        is_reg = bool(_subset_value("is_reg", subset, (), f"{flag} is_reg", bool)) and not controlnet
        cache_info = _subset_value("cache_info", subset, layers, f"{flag} cache_info", bool)
        if repeats < 1:
            continue  # "ignore subset ...: num_repeats is less than 1"
        if image_dir in seen_dirs:
            continue  # "ignore duplicated subset": DreamBoothSubset.__eq__ compares image_dir
        if not os.path.isdir(image_dir):
            state.note(f"not a folder, skipped as sd-scripts does: {image_dir}", f"フォルダではないので sd-scripts と同様に無視しました: {image_dir}", estimate=False)
            continue
        sizes: dict[str, tuple[int, int]] = {}
        cache_file = os.path.join(image_dir, "metadata_cache.json")
        if cache_info and os.path.isfile(cache_file):
            with open(cache_file, encoding="utf-8") as f:
                metas = json.load(f)
            paths = list(metas)
            sizes = {path: tuple(meta["resolution"]) for path, meta in metas.items()}
        else:
            paths, plugin = _glob_images(image_dir)
            if plugin:
                state.note(
                    f"{image_dir}: {len(plugin)} AVIF / JPEG-XL files not counted (sd-scripts reads them only with pillow-avif-plugin / pillow-jxl)",
                    f"{image_dir}: AVIF / JPEG-XL ファイル {len(plugin)} 枚は数えていません(sd-scripts はプラグインがあるときだけ読みます)",
                )
        if split > 0 and not is_reg:
            paths = _split(paths, split, split_seed, state, flag)
        if not paths:
            continue  # "ignore subset ...: no images found"
        if is_reg:
            num_reg += repeats * len(paths)
        else:
            num_train += repeats * len(paths)
        for path in paths:
            image = _Image(path, repeats, sizes.get(path))
            if is_reg:
                reg_infos.append(image)
            else:
                images[path] = image
        seen_dirs.append(image_dir)
        rows.append((image_dir, len(paths), repeats, is_reg))

    if num_reg:
        # the reg images are registered in order, each with its folder's repeats, until they
        # reach the training images; then each gets one more repeat in turn until they match
        n, first_loop = 0, True
        while n < num_train:
            for image in reg_infos:
                if first_loop:
                    images[image.path] = image
                    n += image.repeats
                else:
                    image.repeats += 1
                    n += 1
                if n >= num_train:
                    break
            first_loop = False
    return num_train, num_reg


def _fine_tuning(subsets, config, general, arg_layer, cfg_flag, images, rows, state) -> tuple[int, bool]:
    """FineTuningDataset.__init__. v0.10 and later: sizes from ``image_size`` in the metadata, else
    the header of ``image_dir/key``. v0.9.1 and older: ``train_resolution`` (written by
    prepare_buckets_latents.py) is the bucket when every entry has one; the image is ``key``, or
    ``image_dir/key.<ext>`` (keys are file names without extension). Returns (images x repeats,
    whether the buckets are the train_resolution values)."""
    layers = (config, general, arg_layer)
    seen = []
    num_train = 0
    legacy = True  # every entry has train_resolution and none has image_size
    for number, subset in enumerate(subsets, 1):
        flag = cfg_flag if cfg_flag == "--in_json" else f"{cfg_flag} subset #{number}"
        metadata_file = _subset_value("metadata_file", subset, (), f"{flag} metadata_file", str)
        image_dir = _subset_value("image_dir", subset, (), f"{flag} image_dir", str)
        repeats = _subset_value("num_repeats", subset, layers, f"{flag} num_repeats", int)
        if repeats < 1 or metadata_file in seen:
            continue
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
        if not metadata:
            continue
        for key, entry in metadata.items():
            entry = entry if isinstance(entry, Mapping) else {}
            size = entry.get("image_size")
            legacy = legacy and "train_resolution" in entry and size is None
            path = _metadata_image(key, image_dir)
            if size is None and path is None and "train_resolution" not in entry:
                state.note(f"no image for metadata entry {key}", f"メタデータの {key} の画像が見つかりません")
            images[key] = _Image(path or key, repeats, tuple(size) if size else None)
            if "train_resolution" in entry:
                images[key].legacy_size = tuple(entry["train_resolution"])
        num_train += len(metadata) * repeats
        seen.append(metadata_file)
        rows.append((metadata_file, len(metadata), repeats, False))
    legacy = legacy and bool(images)
    if legacy:
        for image in images.values():
            image.size = image.legacy_size
        state.note(
            "the metadata has train_resolution for every image: counted as sd-scripts v0.9.1 and older do, one bucket per train_resolution",
            "メタデータのすべての画像に train_resolution があります: sd-scripts v0.9.1 以前と同じく train_resolution ごとの bucket で数えました",
            estimate=False,
        )
    return num_train, legacy


def _metadata_image(key: str, image_dir: str | None) -> str | None:
    candidates = [os.path.join(image_dir, key)] if image_dir is not None and not os.path.isabs(key) else []
    candidates.append(key)
    if image_dir is not None:
        candidates += [os.path.join(image_dir, key + ext) for ext in IMAGE_EXTENSIONS]
    return next((path for path in candidates if os.path.isfile(path)), None)
