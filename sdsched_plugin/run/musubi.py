"""Counting a musubi-tuner run from its dataset config and latent caches. Standard library only.

musubi-tuner's datasets (musubi_tuner/dataset/image_video_dataset.py) are not its images but its
latent caches: ImageDataset / VideoDataset.prepare_for_training globs
``cache_directory/*_{architecture}.safetensors`` (kept only with the matching ``*_te.safetensors``),
reads each item's size (and a video's frame count) from the file name, puts it in the bucket of
BucketSelector (× num_repeats; control latents of other shapes split a bucket), and a dataset has
sum over buckets of ceil(items / batch_size) batches. trainer_base.py then does train_network.py's
arithmetic. So: with caches, the count is exact; an image dataset not cached yet is counted from
its images (an estimate: the caches decide); a video dataset needs its caches (frame extraction
decides how many items a video gives).
"""

from __future__ import annotations

import json
import math
import os
import struct
from typing import Any, Mapping

from ..schedule.options import OptionError
from ..schedule.steps import DatasetCount, RunCount
from .dataset_config import (
    IMAGE_EXTENSIONS, State, arg_value, checked, image_size, load_config, lookup, read_run_flags, resolution_of, run_count_of,
)  # fmt: skip

MUSUBI_RESO_STEPS = {"ho1": 32}  # BucketSelector.ARCHITECTURE_STEPS_MAP: 16 for every other architecture
MUSUBI_IMAGE_EXTENSIONS = IMAGE_EXTENSIONS + (".avif", ".AVIF")


class MusubiBuckets:
    """musubi-tuner's BucketSelector.get_bucket_resolution."""

    def __init__(self, resolution: tuple[int, int], enable_bucket: bool, no_upscale: bool, reso_steps: int):
        self.area = resolution[0] * resolution[1]
        self.steps = reso_steps
        if not enable_bucket:
            self.resos, self.no_upscale = [tuple(resolution)], False
        else:
            self.no_upscale = no_upscale
            sqrt_size = int(math.sqrt(self.area))
            min_size = (sqrt_size // 2) - (sqrt_size // 2) % reso_steps
            resos = set()
            for w in range(min_size, sqrt_size + reso_steps, reso_steps):
                h = (self.area // w) - (self.area // w) % reso_steps
                resos.update({(w, h), (h, w)})
            self.resos = sorted(resos)
        self.ars = [w / h for w, h in self.resos]

    def select(self, width: int, height: int) -> tuple[int, int]:
        if self.no_upscale and width * height <= self.area:
            return width - width % self.steps, height - height % self.steps
        errors = [abs(ar - width / height) for ar in self.ars]
        return self.resos[errors.index(min(errors))]


def _safetensors_keys(path: str) -> list[str]:
    # the header: an 8-byte little-endian length, then JSON
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        return list(json.loads(f.read(length)))


def _count_caches(cache_dir: str, names: list[str], architecture: str, is_image: bool, selector: MusubiBuckets, repeats: int, state: State):
    """ImageDataset / VideoDataset.prepare_for_training over the latent caches: (items x repeats
    per bucket, items)."""
    import re

    counts: dict[tuple, int] = {}
    items = 0
    for name in names:
        tokens = name.split("_")
        try:
            width, height = map(int, tokens[-2].split("x"))
            key_tokens = tokens[:-2] if is_image else tokens[:-3]
            frames = None if is_image else int(tokens[-3].split("-")[1])
        except (ValueError, IndexError):
            state.note(f"{cache_dir}: not a cache file name musubi-tuner reads: {name}", f"{cache_dir}: musubi-tuner が読めないキャッシュ名です: {name}")
            continue
        if not os.path.exists(os.path.join(cache_dir, f"{'_'.join(key_tokens)}_{architecture}_te.safetensors")):
            continue  # musubi-tuner: "Text encoder output cache file not found", the item is skipped
        bucket = selector.select(width, height)
        if frames is not None:
            bucket = (*bucket, frames)
        try:  # control latents of other counts or shapes split the bucket
            controls = sorted(
                m.group(1) for k in _safetensors_keys(os.path.join(cache_dir, name)) if (m := re.match(r"(latents_control_\d+_[0-9x]+)", k))
            )
        except (OSError, ValueError, struct.error):
            controls = []
        bucket = (*bucket, *controls)
        counts[bucket] = counts.get(bucket, 0) + repeats
        items += 1
    return counts, items


def _count_images(ds: Mapping, directory, selector: MusubiBuckets, repeats: int, resolution, state: State):
    """An image dataset without caches, counted from its images (an estimate: the caches decide)."""
    counts: dict[tuple, int] = {}
    paths = []
    if ds.get("image_jsonl_file"):
        with open(ds["image_jsonl_file"], encoding="utf-8") as f:
            paths = [json.loads(line)["image_path"] for line in f if line.strip()]
    elif directory and os.path.isdir(directory):
        paths = sorted(os.path.join(directory, n) for n in os.listdir(directory) if n.endswith(MUSUBI_IMAGE_EXTENSIONS))
    for path in paths:
        size = image_size(path)
        if size is None:
            state.note(f"cannot read the size of {path}", f"{path} のサイズを読めません")
            size = resolution
        bucket = selector.select(*size)
        counts[bucket] = counts.get(bucket, 0) + repeats
    return counts, len(paths)


def _musubi_dataset(index: int, ds: Any, general: Mapping, architecture: str, state: State) -> tuple[DatasetCount, bool]:
    """One ``[[datasets]]`` entry: (its count, whether it was counted from caches)."""
    flag = f"--dataset_config [[datasets]] #{index + 1}"
    if not isinstance(ds, Mapping):
        raise OptionError(flag, ds, "a table", "表([[datasets]])で書いてください")
    layers = (ds, general)
    is_image = "image_directory" in ds or "image_jsonl_file" in ds
    batch_size = checked(lookup("batch_size", layers, 1), int, f"{flag} batch_size", 1)
    repeats = checked(lookup("num_repeats", layers, 1), int, f"{flag} num_repeats", 1)
    resolution = resolution_of(lookup("resolution", layers, (960, 544)), f"{flag} resolution")
    enable_bucket = checked(lookup("enable_bucket", layers, False), bool, f"{flag} enable_bucket")
    no_upscale = checked(lookup("bucket_no_upscale", layers, False), bool, f"{flag} bucket_no_upscale")
    directory = ds.get("image_directory") if is_image else ds.get("video_directory")
    cache_dir = lookup("cache_directory", layers, None) or directory
    selector = MusubiBuckets(resolution, enable_bucket, no_upscale, MUSUBI_RESO_STEPS.get(architecture, 16))
    caches = []
    if cache_dir and os.path.isdir(cache_dir):
        suffix = f"_{architecture}.safetensors"
        caches = sorted(n for n in os.listdir(cache_dir) if n.endswith(suffix) and not n.startswith("."))
    if caches:
        counts, items = _count_caches(cache_dir, caches, architecture, is_image, selector, repeats, state)
    elif is_image:
        state.note(
            f"{flag}: no latent cache for {architecture} in {cache_dir}: counted from the images; musubi-tuner counts the cached latents",
            f"{flag}: {cache_dir} に {architecture} の latent キャッシュがないため画像から数えました。musubi-tuner はキャッシュを数えます",
        )
        counts, items = _count_images(ds, directory, selector, repeats, resolution, state)
    else:
        raise OptionError(
            f"{flag} cache_directory", cache_dir, f"the latent caches of the videos (*_{architecture}.safetensors): cache them first",
            f"動画の latent キャッシュ(*_{architecture}.safetensors)が必要です。先にキャッシュを作成してください",
        )
    buckets = tuple(sorted(((b[0], b[1]), n) for b, n in counts.items())) if all(len(b) == 2 for b in counts) else tuple(sorted(counts.items()))
    count = DatasetCount(
        kind="image" if is_image else "video",
        batch_size=batch_size,
        resolution=resolution,
        enable_bucket=enable_bucket,
        subsets=((str(cache_dir), items, repeats, False),),
        num_train_images=items * repeats,
        num_reg_images=0,
        buckets=buckets,
        batches=sum(math.ceil(n / batch_size) for n in counts.values()),
    )
    return count, bool(caches)


def count_musubi(args: Any, num_processes: int = 1, architecture: str | None = None) -> RunCount:
    """The run of a musubi-tuner training script: ``args`` has ``dataset_config`` (its TOML),
    max_train_steps, max_train_epochs, gradient_accumulation_steps; ``architecture`` is the short
    name in its cache files ("hv", "wan", "fp", "fk", "qi", "qie", "f2d", "zi", ...)."""
    state = State()
    flags = read_run_flags(args, num_processes)
    config_path = arg_value(args, "dataset_config")
    if config_path is None:
        raise OptionError("--dataset_config", None, "musubi-tuner's dataset config TOML", "musubi-tuner のデータセット設定 TOML を指定してください")
    if not architecture:
        raise OptionError("architecture", architecture, "the cache files' architecture, e.g. hv, wan, fp, qi", "キャッシュファイルのアーキテクチャ名(例: hv, wan, fp, qi)")
    config = load_config(str(config_path))
    general = config.get("general", {}) or {}
    counted = [_musubi_dataset(index, ds, general, architecture, state) for index, ds in enumerate(config.get("datasets", []) or [])]
    datasets = [count for count, _ in counted]
    directories = [d.subsets[0][0] for d in datasets]
    if len(set(directories)) != len(directories):  # generate_dataset_group_by_blueprint refuses it too
        raise OptionError(
            "--dataset_config", str(config_path), "a cache_directory of its own for each dataset (the image/video folder if not given)",
            "cache_directory はデータセットごとに別にしてください(未指定なら画像/動画フォルダ)",
        )
    batches = sum(d.batches for d in datasets)
    if batches == 0:
        raise OptionError("--dataset_config", str(config_path), "a dataset with at least one cached item", "キャッシュ済みのデータが見つかりません")
    from_caches = all(from_cache for _, from_cache in counted)
    return run_count_of(datasets, batches, flags, state, "latent caches" if from_caches else "folder layout")
