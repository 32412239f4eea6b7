"""The run's size from its dataset: ``dataset_count`` (pure, the fallback) against counts derived
by hand from sd-scripts' source, and, with ``SD_SCRIPTS_DIR`` set, against sd-scripts' own
dataset code through ``sd_scripts.count_run`` for every case.

The derivations use sd-scripts' rules (library/train_util.py, library/config_util.py,
train_network.py at 48d368fa; the same in v0.7.0 .. v0.9.1 for everything used here):

- make_bucket_resolutions((512, 512), 256, 1024, 64) gives, sorted,
  (256,832) (256,896) (256,960) (256,1024) (320,704) (320,768) (384,640) (448,576) (512,512)
  (576,448) (640,384) (704,320) (768,320) (832,256) (896,256) (960,256) (1024,256);
- select_bucket picks the predefined bucket with the nearest aspect ratio (the first on a tie):
  64x64 (1.0) -> (512,512); 96x64 (1.5) -> (640,384) (|1.667-1.5| = .167 < |1.286-1.5| = .214);
  64x96 (.667) -> (384,640) (|.6-.667| = .067 < |.778-.667| = .111); 128x64 (2.0) -> (704,320)
  (|2.2-2| = .2 < |2.4-2| = .4 and < |1.667-2| = .333);
- with bucket_no_upscale an image no larger than the resolution's area keeps its size, cut down
  to a multiple of bucket_reso_steps: 64x64 -> (64,64), 96x64 -> (64,64), 128x64 -> (128,64),
  64x96 -> (64,64); a larger one is scaled to the area first (see test_no_upscale_buckets);
- a dataset has sum over buckets of ceil(images in bucket incl. repeats / batch_size) batches;
- reg images: registered in folder order with their repeats until they reach the training
  images, then one more repeat each, in turn, until the counts are equal;
- train_network.py: max_train_steps = epochs * ceil(batches / processes / accumulation);
  steps per epoch = ceil(ceil(batches / processes) / accumulation); epochs = ceil(max_train_steps
  / steps per epoch).
"""

from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import inspect
import json
import struct
import sys
import zlib
from pathlib import Path

import pytest

from sdsched_plugin.run import layout as dataset_count
from sdsched_plugin.run import musubi as musubi_count
from sdsched_plugin.schedule.options import OptionError

from conftest import MUSUBI_TUNER_DIR, SD_SCRIPTS_DIR


def write_png(path: Path, width: int, height: int, shade: int = 128) -> None:
    """A valid grey PNG, standard library only."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    rows = b"".join(b"\x00" + bytes([shade]) * width for _ in range(height))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


SQUARE, WIDE, TALL, WIDER = (64, 64), (96, 64), (64, 96), (128, 64)


def make_images(folder: Path, sizes, prefix: str = "img") -> None:
    for i, (w, h) in enumerate(sizes):
        write_png(folder / f"{prefix}{i:02d}.png", w, h, shade=40 + 10 * i)
        (folder / f"{prefix}{i:02d}.txt").write_text("a photo")


@pytest.fixture
def folders(tmp_path):
    """train/5_char: 3 square, 2 wide, 1 tall; train/3_style: 2 wider, 1 square;
    reg/1_person: 2 square then 2 tall (file names sort in that order)."""
    make_images(tmp_path / "train" / "5_char", [SQUARE, SQUARE, SQUARE, WIDE, WIDE, TALL])
    make_images(tmp_path / "train" / "3_style", [WIDER, WIDER, SQUARE])
    (tmp_path / "train" / "no_repeats").mkdir()  # ignored: the name does not start with a number
    write_png(tmp_path / "train" / "no_repeats" / "x.png", 64, 64)
    make_images(tmp_path / "reg" / "1_person", [SQUARE, SQUARE, TALL, TALL], prefix="r")
    return tmp_path


# ---------------------------------------------------------------------------------------------
# sd-scripts, when SD_SCRIPTS_DIR points at a checkout


def sd_module(name):
    """A module of the sd-scripts checkout at SD_SCRIPTS_DIR."""
    if str(SD_SCRIPTS_DIR) not in sys.path:
        sys.path.insert(0, str(SD_SCRIPTS_DIR))
    return importlib.import_module(name)


def sd_args(argv):
    """The namespace train_network.py's own parser and read_config_from_file make of argv."""
    if str(SD_SCRIPTS_DIR) not in sys.path:
        sys.path.insert(0, str(SD_SCRIPTS_DIR))
    train_network = importlib.import_module("train_network")
    from library import train_util

    parser = train_network.setup_parser()
    saved = sys.argv
    sys.argv = ["train_network.py", *argv]  # read_config_from_file parses sys.argv again
    try:
        return train_util.read_config_from_file(parser.parse_args(argv), parser)
    finally:
        sys.argv = saved


def sd_count(argv, num_processes=1):
    """sd-scripts' own count: train_network.py's parser, read_config_from_file, count_run."""
    from sdsched_plugin.run import sd_scripts

    return sd_scripts.count_run(sd_args(argv), num_processes)


def sd_has(text):
    """Whether the checkout's train_util has this text (to tell its version's behaviour)."""
    return SD_SCRIPTS_DIR is not None and text in (SD_SCRIPTS_DIR / "library" / "train_util.py").read_text(encoding="utf-8")


def check(argv, num_processes=1, real=True, **expected):
    """dataset_count on the parsed flags; with SD_SCRIPTS_DIR (and ``real``: the checkout's
    version has the feature), sd-scripts' count must agree."""
    namespace = _pure_namespace(argv)
    run = dataset_count.count(namespace, num_processes)
    for key, value in expected.items():
        assert getattr(run, key) == value, (key, getattr(run, key), value)
    if SD_SCRIPTS_DIR is not None and real:
        sd_namespace = sd_args(["--pretrained_model_name_or_path", "unused", *argv])
        from sdsched_plugin.run import sd_scripts

        real = sd_scripts.count_run(sd_namespace, num_processes)
        # the fallback reads sd-scripts' own namespace as well as a plain one
        assert dataset_count.count(sd_namespace, num_processes) == run
        for key in ("batches", "batches_per_epoch", "steps_per_epoch", "max_train_steps", "epochs", "num_train_images", "num_reg_images"):
            assert getattr(real, key) == getattr(run, key), (key, getattr(real, key), getattr(run, key))
        assert [(d.batch_size, d.buckets, d.batches) for d in real.datasets] == [
            (d.batch_size, d.buckets, d.batches) for d in run.datasets
        ]
        assert real.source == "sd-scripts"
    return run


def _pure_namespace(argv):
    """The flags the count reads, parsed as sd-scripts' parser types them."""
    parser = argparse.ArgumentParser()
    for name in ("train_data_dir", "reg_data_dir", "in_json", "dataset_config", "resolution"):
        parser.add_argument(f"--{name}")
    for name, default in (("train_batch_size", 1), ("max_train_steps", 1600), ("max_train_epochs", None), ("gradient_accumulation_steps", 1),
                          ("min_bucket_reso", 256), ("max_bucket_reso", 1024), ("bucket_reso_steps", 64), ("seed", None),
                          ("validation_seed", None), ("dataset_repeats", 1)):
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--validation_split", type=float, default=0.0)
    parser.add_argument("--enable_bucket", action="store_true")
    parser.add_argument("--bucket_no_upscale", action="store_true")
    return parser.parse_args(argv)


# ---------------------------------------------------------------------------------------------
# image headers and buckets


def test_png_header(tmp_path):
    write_png(tmp_path / "a.png", 123, 45)
    assert dataset_count.image_size(str(tmp_path / "a.png")) == (123, 45)


@pytest.mark.parametrize(
    "fmt, ext, kwargs",
    [
        ("JPEG", ".jpg", {}),
        ("JPEG", ".jpeg", {"progressive": True}),
        ("WEBP", ".webp", {}),
        ("WEBP", ".webp", {"lossless": True}),
        ("BMP", ".bmp", {}),
        ("PNG", ".png", {}),
    ],
)
def test_headers_match_pillow(tmp_path, fmt, ext, kwargs):
    Image = pytest.importorskip("PIL.Image")
    for size in [(1, 1), (333, 77), (77, 333), (1000, 600)]:
        path = tmp_path / f"x{size[0]}{ext}"
        Image.new("RGB", size, (200, 10, 10)).save(path, fmt, **kwargs)
        assert dataset_count.image_size(str(path)) == size
        if SD_SCRIPTS_DIR is not None:  # sd-scripts' own reader: imagesize, PIL where imagesize gives up
            train_util = sd_module("library.train_util")
            if fmt == "BMP" and "Image.open" not in inspect.getsource(train_util.BaseDataset.get_image_size):
                # sd-scripts <= v0.9.1 reads sizes with imagesize 1.4.1 only, which does not know BMP:
                # (-1, -1), an aspect ratio of 1; v0.10 falls back to PIL. We count the true size.
                assert tuple(train_util.BaseDataset.get_image_size(None, str(path))) == (-1, -1)
                continue
            assert tuple(train_util.BaseDataset.get_image_size(None, str(path))) == size


def test_jpeg_with_exif_and_a_misnamed_file(tmp_path):
    Image = pytest.importorskip("PIL.Image")
    path = tmp_path / "photo.png"  # a JPEG named .png: the content decides, as in imagesize
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation "rotate 90"
    Image.new("RGB", (300, 200)).save(path, "JPEG", exif=exif)
    # sd-scripts buckets by imagesize.get(path): imagesize 1.x (sd-scripts pins 1.4.1) gives the stored
    # size, 2.x applies the orientation. The count follows the imagesize of the venv, as sd-scripts does.
    rotates = int(importlib.metadata.version("imagesize").split(".")[0]) >= 2
    assert dataset_count.image_size(str(path)) == ((200, 300) if rotates else (300, 200))


def test_unreadable_header(tmp_path):
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    assert dataset_count.image_size(str(tmp_path / "broken.png")) is None


def test_predefined_buckets():
    assert dataset_count.bucket_resolutions((512, 512), 256, 1024, 64) == [
        (256, 832), (256, 896), (256, 960), (256, 1024), (320, 704), (320, 768), (384, 640), (448, 576), (512, 512),
        (576, 448), (640, 384), (704, 320), (768, 320), (832, 256), (896, 256), (960, 256), (1024, 256),
    ]  # fmt: skip
    if SD_SCRIPTS_DIR is not None:
        model_util = sd_module("library.model_util")
        cases = [((512, 512), 256, 1024, 64), ((1024, 1024), 256, 2048, 64)]
        if "height >= min_size" in inspect.getsource(model_util.make_bucket_resolutions):
            # v0.8.0 and later; v0.7.x worked in whole steps of the area and kept buckets below
            # min_size: the same buckets for the cases above, others for this one
            cases.append(((768, 512), 320, 1280, 32))
        for args in cases:
            assert dataset_count.bucket_resolutions(*args) == model_util.make_bucket_resolutions(*args)


def test_select_bucket_matches_bucket_manager():
    pred = dataset_count.Buckets(False, (512, 512), 64, dataset_count.bucket_resolutions((512, 512)))
    assert [pred.select(*s) for s in (SQUARE, WIDE, TALL, WIDER)] == [(512, 512), (640, 384), (384, 640), (704, 320)]
    if SD_SCRIPTS_DIR is None:
        return
    train_util = sd_module("library.train_util")
    sizes = [(w, h) for w in range(40, 2100, 97) for h in range(40, 2100, 89)] + [(512, 512), (640, 384), (1000, 600)]
    for no_upscale, reso, steps in [(False, (512, 512), 64), (True, (512, 512), 64), (False, (1024, 768), 32), (True, (1024, 1024), 32)]:
        manager = train_util.BucketManager(no_upscale, reso, 256, 2048, steps)
        if not no_upscale:
            manager.make_buckets()
        # the checkout's own predefined buckets (v0.7.x makes others, see test_predefined_buckets)
        ours = dataset_count.Buckets(no_upscale, reso, steps, None if no_upscale else list(manager.predefined_resos))
        for w, h in sizes:
            if no_upscale and min(w, h) < steps:
                continue  # a bucket side of 0: sd-scripts divides by it (ZeroDivisionError); see test_bad_inputs_name_the_flag
            assert ours.select(w, h) == tuple(manager.select_bucket(w, h)[0]), (no_upscale, reso, w, h)


# ---------------------------------------------------------------------------------------------
# folders


def test_repeat_folders_reg_and_buckets(folders):
    # train: 5_char 6 images x5 = 30, 3_style 3 x3 = 9 -> num_train_images 39; no_repeats ignored
    # reg: 1_person 4 x1 = 4 (num_reg_images); balancing: the first pass registers all 4 (n = 4),
    #   then 35 more repeats: 8 full passes (32) and 3 more -> r00, r01, r02: 1+9 = 10, r03: 1+8 = 9
    # buckets (repeats included):
    #   (512,512): char 3x5 = 15, style 1x3 = 3, reg r00 10 + r01 10 -> 38 -> ceil(38/4) = 10
    #   (640,384): char wide 2x5 = 10                                 -> ceil(10/4) = 3
    #   (384,640): char tall 1x5 = 5, reg r02 10 + r03 9 -> 24       -> ceil(24/4) = 6
    #   (704,320): style 2x3 = 6                                       -> ceil(6/4)  = 2
    # batches = 21; 10 epochs, 1 process, no accumulation: 21 steps per epoch, 210 steps
    argv = [f"--train_data_dir={folders / 'train'}", f"--reg_data_dir={folders / 'reg'}", "--resolution=512",
            "--enable_bucket", "--train_batch_size=4", "--max_train_epochs=10"]  # fmt: skip
    run = check(argv, batches=21, batches_per_epoch=21, steps_per_epoch=21, max_train_steps=210, epochs=10,
                num_train_images=39, num_reg_images=4)  # fmt: skip
    assert run.datasets[0].buckets == (((384, 640), 24), ((512, 512), 38), ((640, 384), 10), ((704, 320), 6))
    assert not run.estimate and run.source == "folder layout"


def test_without_buckets_one_bucket(folders):
    # enable_bucket off: all 39 + 39 reg image repeats in one (512,512) bucket: ceil(78/4) = 20
    argv = [f"--train_data_dir={folders / 'train'}", f"--reg_data_dir={folders / 'reg'}", "--resolution=512",
            "--train_batch_size=4", "--max_train_epochs=10"]  # fmt: skip
    run = check(argv, batches=20, steps_per_epoch=20, max_train_steps=200)
    # 64px images at resolution 512 without buckets: sd-scripts' __getitem__ stops at them
    # ("image size is small") unless the latents are cached; said before the model loads
    assert any("image size" in note or "are not 512x512" in note for note in run.notes) and not run.estimate


def test_processes_and_accumulation(folders):
    # 21 batches on 2 processes with 2-step accumulation:
    #   max_train_steps = 10 * ceil(21 / 2 / 2 = 5.25) = 60; one process sees ceil(21/2) = 11
    #   batches per epoch, ceil(11/2) = 6 optimizer steps per epoch; epochs = ceil(60/6) = 10
    argv = [f"--train_data_dir={folders / 'train'}", f"--reg_data_dir={folders / 'reg'}", "--resolution=512",
            "--enable_bucket", "--train_batch_size=4", "--max_train_epochs=10", "--gradient_accumulation_steps=2"]  # fmt: skip
    check(argv, num_processes=2, batches=21, batches_per_epoch=11, steps_per_epoch=6, max_train_steps=60, epochs=10)


def test_max_train_steps_gives_epochs(folders):
    # no --max_train_epochs: the steps stay 100; with 3-step accumulation an epoch is ceil(21/3) = 7
    # steps, so sd-scripts runs ceil(100/7) = 15 epochs
    argv = [f"--train_data_dir={folders / 'train'}", f"--reg_data_dir={folders / 'reg'}", "--resolution=512",
            "--enable_bucket", "--train_batch_size=4", "--max_train_steps=100", "--gradient_accumulation_steps=3"]  # fmt: skip
    check(argv, batches=21, steps_per_epoch=7, max_train_steps=100, epochs=15)


def test_no_upscale_buckets(folders):
    # bucket_no_upscale: 5_char 3 square + 2 wide + 1 tall all go to (64,64): 6 x5 = 30;
    # 3_style 2 x 128x64 -> (128,64): 6, 1 square -> (64,64): 3; reg: 39 repeats, all (64,64)
    # -> (64,64) 30 + 3 + 39 = 72 -> 18 batches of 4, (128,64) 6 -> 2: 20 batches
    argv = [f"--train_data_dir={folders / 'train'}", f"--reg_data_dir={folders / 'reg'}", "--resolution=512",
            "--enable_bucket", "--bucket_no_upscale", "--train_batch_size=4", "--max_train_epochs=1"]  # fmt: skip
    run = check(argv, batches=20, max_train_steps=20)
    assert run.datasets[0].buckets == (((64, 64), 72), ((128, 64), 6))


def test_no_upscale_scales_large_images_down(tmp_path):
    # bucket_no_upscale, area 512*512 = 262144, steps 64:
    # a 1000x600 (ar 5/3) is larger: width sqrt(262144 * 5/3) = 660.99 -> 640, its height
    #   640 / (5/3) = 384 -> 384 (ratio exact); height 262144 / 660.99 = 396.6 -> 384, its width
    #   640 (exact too); no strictly smaller error -> the height-rounded (int(384*5/3 + .5), 384)
    #   = (640,384) -> bucket (640,384)
    # b 900x300 (ar 3) is larger: width sqrt(262144*3) = 886.8 -> 832, height 832/3 = 277.3 -> 256:
    #   ratio 3.25; height 262144/886.8 = 295.6 -> 256, width 256*3 = 768: ratio 3.0 (exact) ->
    #   (768,256)
    # c 700x300 = 210000 is not larger: kept, cut to steps -> (640,256)
    # 2 repeats each, batch 1: 6 batches; 3 epochs: 18 steps
    write_png(tmp_path / "d" / "2_x" / "a.png", 1000, 600)
    write_png(tmp_path / "d" / "2_x" / "b.png", 900, 300)
    write_png(tmp_path / "d" / "2_x" / "c.png", 700, 300)
    argv = [f"--train_data_dir={tmp_path / 'd'}", "--resolution=512", "--enable_bucket", "--bucket_no_upscale", "--max_train_epochs=3"]
    run = check(argv, batches=6, max_train_steps=18)
    assert run.datasets[0].buckets == (((640, 256), 2), ((640, 384), 2), ((768, 256), 2))


# ---------------------------------------------------------------------------------------------
# dataset_config


def test_two_datasets_with_their_own_batch_sizes(folders, tmp_path):
    # dataset 1 (batch 3, buckets from [general]): char x2 = 12, reg 4 images x1:
    #   reg balancing to 12: first pass 4, then 8 more: 2 full passes -> each reg image 3 repeats
    #   (512,512): char 3x2 = 6 + reg 2x3 = 6 -> 12 -> 4 batches; (640,384): 2x2 = 4 -> 2;
    #   (384,640): char 1x2 = 2 + reg 2x3 = 6 -> 8 -> 3                      => 9 batches
    # dataset 2 (batch 2, resolution 768 from the dataset, no buckets: one (768,768) bucket):
    #   style x5 = 15 -> ceil(15/2) = 8 batches                               => 8 batches
    # group: 17 batches; 2 processes, accumulation 2, 4 epochs:
    #   max_train_steps = 4 * ceil(17/2/2 = 4.25) = 20; per process ceil(17/2) = 9 batches,
    #   ceil(9/2) = 5 steps per epoch; epochs = ceil(20/5) = 4
    config = tmp_path / "dataset.toml"
    config.write_text(
        f"""
[general]
enable_bucket = true
caption_extension = ".txt"

[[datasets]]
batch_size = 3
  [[datasets.subsets]]
  image_dir = '{folders / "train" / "5_char"}'
  num_repeats = 2
  [[datasets.subsets]]
  image_dir = '{folders / "reg" / "1_person"}'
  is_reg = true

[[datasets]]
batch_size = 2
resolution = 768
enable_bucket = false
  [[datasets.subsets]]
  image_dir = '{folders / "train" / "3_style"}'
  num_repeats = 5
""",
        encoding="utf-8",
    )
    argv = [f"--dataset_config={config}", "--resolution=512", "--max_train_epochs=4", "--gradient_accumulation_steps=2",
            f"--train_data_dir={folders / 'ignored'}"]  # fmt: skip
    run = check(argv, num_processes=2, batches=17, batches_per_epoch=9, steps_per_epoch=5, max_train_steps=20, epochs=4,
                num_train_images=27, num_reg_images=4)  # fmt: skip
    assert [(d.batch_size, d.batches) for d in run.datasets] == [(3, 9), (2, 8)]
    assert run.datasets[1].buckets == (((768, 768), 15),)


def test_config_values_fall_back_subset_dataset_general_command_line(folders, tmp_path):
    # num_repeats: subset 4 > dataset 3 > general 2 > --dataset_repeats; batch_size from the
    # command line (--train_batch_size=5), resolution from [general] (512, buckets on)
    # subset A (5_char, num_repeats from the subset: 4): 6 x4 = 24 -> (512,512) 12, (640,384) 8, (384,640) 4
    # subset B (3_style, from the dataset: 3): 3 x3 = 9 -> (704,320) 6, (512,512) 3
    # (512,512) 15 -> 3, (640,384) 8 -> 2, (384,640) 4 -> 1, (704,320) 6 -> 2: 8 batches
    config = tmp_path / "c.toml"
    config.write_text(
        f"""
[general]
num_repeats = 2
resolution = 512
enable_bucket = true
[[datasets]]
num_repeats = 3
[[datasets.subsets]]
image_dir = '{folders / "train" / "5_char"}'
num_repeats = 4
[[datasets.subsets]]
image_dir = '{folders / "train" / "3_style"}'
""",
        encoding="utf-8",
    )
    check([f"--dataset_config={config}", "--train_batch_size=5", "--max_train_steps=40"], batches=8, steps_per_epoch=8, epochs=5)


def test_validation_split_with_seed(folders, tmp_path):
    # validation_split 0.5 with validation_seed 7: each training subset keeps ceil(n * 0.5) of its
    # images, chosen by random.Random(7).shuffle of its sorted paths; which ones decides the buckets,
    # so both counts must agree exactly (only checked against sd-scripts: v0.10 and later)
    config = tmp_path / "v.toml"
    config.write_text(
        f"""
[[datasets]]
resolution = 512
enable_bucket = true
batch_size = 2
validation_split = 0.5
validation_seed = 7
[[datasets.subsets]]
image_dir = '{folders / "train" / "5_char"}'
num_repeats = 3
""",
        encoding="utf-8",
    )
    run = check([f"--dataset_config={config}", "--max_train_epochs=2"], real=sd_has("def split_train_val"))
    assert run.num_train_images == 3 * 3  # ceil(6 * 0.5) = 3 images kept
    assert not run.estimate


def test_in_json_fine_tuning(tmp_path):
    # metadata: two images with image_size (not read from disk), one read from its header:
    # a 1000x600 (-> (640,384)), b 600x1000 (-> (384,640)), c.png 64x64 (-> (512,512)); x2 repeats
    # (--dataset_repeats) -> 2 + 2 + 2 image repeats, batch 2 -> 3 batches
    images = tmp_path / "ft"
    write_png(images / "a.png", 1000, 600)
    write_png(images / "b.png", 600, 1000)
    write_png(images / "c.png", 64, 64)
    meta = tmp_path / "meta.json"
    meta.write_text(json.dumps({"a.png": {"caption": "a", "image_size": [1000, 600]}, "b.png": {"caption": "b", "image_size": [600, 1000]},
                                "c.png": {"caption": "c"}}))  # fmt: skip
    argv = [f"--train_data_dir={images}", f"--in_json={meta}", "--resolution=512", "--enable_bucket", "--train_batch_size=2",
            "--dataset_repeats=2", "--max_train_epochs=5"]  # fmt: skip
    # keys are paths under image_dir: the metadata of sd-scripts v0.10 and later
    run = check(argv, batches=3, max_train_steps=15, num_train_images=6, real=not sd_has("train_resolution"))
    assert run.datasets[0].kind == "fine-tuning"


def test_in_json_with_train_resolution(tmp_path):
    # prepare_buckets_latents.py metadata: keys without extension, train_resolution for every image.
    # sd-scripts v0.9.1 and older make one bucket per train_resolution (bucketing on, no
    # --resolution needed): (640,384) a, d; (384,640) b; (512,512) c; x3 repeats, batch 2:
    # ceil(6/2) + ceil(3/2) + ceil(3/2) = 3 + 2 + 2 = 7 batches; 2 epochs: 14 steps
    images = tmp_path / "ft"
    for name, size in (("a", (100, 60)), ("b", (60, 100)), ("c", (64, 64)), ("d", (100, 60))):
        write_png(images / f"{name}.png", *size)
    meta = tmp_path / "meta_lat.json"
    meta.write_text(json.dumps({"a": {"caption": "a", "train_resolution": [640, 384]}, "b": {"caption": "b", "train_resolution": [384, 640]},
                                "c": {"caption": "c", "train_resolution": [512, 512]}, "d": {"caption": "d", "train_resolution": [640, 384]}}))  # fmt: skip
    argv = [f"--train_data_dir={images}", f"--in_json={meta}", "--train_batch_size=2", "--dataset_repeats=3", "--max_train_epochs=2"]
    run = check(argv, batches=7, max_train_steps=14, num_train_images=12, real=sd_has("train_resolution"))
    assert run.datasets[0].buckets == (((384, 640), 3), ((512, 512), 3), ((640, 384), 6))
    assert any("train_resolution" in note for note in run.notes)


# ---------------------------------------------------------------------------------------------
# notes and errors


def test_unreadable_image_makes_an_estimate(folders):
    (folders / "train" / "5_char" / "zz.png").write_bytes(b"garbage")
    run = dataset_count.count(
        {"train_data_dir": str(folders / "train"), "resolution": "512", "enable_bucket": True, "max_train_epochs": 1}
    )
    assert run.estimate
    assert any("zz.png" in note and " / " in note for note in run.notes)


def test_validation_split_without_seed_is_an_estimate(folders):
    run = dataset_count.count(
        {"train_data_dir": str(folders / "train"), "resolution": "512", "enable_bucket": True, "validation_split": 0.5}
    )
    assert run.estimate and any("validation_split" in note for note in run.notes)


@pytest.mark.parametrize(
    "args, flag",
    [
        ({"train_data_dir": "/no/such/folder", "resolution": "512"}, "--train_data_dir"),
        ({"train_data_dir": "EMPTY", "resolution": "512"}, "--train_data_dir"),
        ({"dataset_config": "BAD_TOML"}, "--dataset_config"),
        ({"dataset_config": "/no/such.toml"}, "--dataset_config"),
        ({"train_data_dir": "TRAIN"}, "--resolution"),
        ({"train_data_dir": "TRAIN", "resolution": "512", "enable_bucket": True, "min_bucket_reso": 640}, "--min_bucket_reso"),
        ({"train_data_dir": "TRAIN", "resolution": "512,x"}, "--resolution"),
        ({"train_data_dir": "TRAIN", "resolution": "512", "gradient_accumulation_steps": 0}, "--gradient_accumulation_steps"),
        ({"dataset_config": "WRONG_TYPE"}, "--dataset_config [[datasets]] #1 batch_size"),
        ({"dataset_class": "my.Dataset"}, "--dataset_class"),
        ({"train_data_dir": "TINY", "resolution": "512", "enable_bucket": True, "bucket_no_upscale": True}, "--bucket_no_upscale"),
    ],
)
def test_bad_inputs_name_the_flag(folders, tmp_path, args, flag):
    (tmp_path / "empty").mkdir()
    write_png(tmp_path / "tiny" / "1_x" / "a.png", 40, 40)  # smaller than bucket_reso_steps
    (tmp_path / "bad.toml").write_text("[[datasets]\nbatch_size = ")
    (tmp_path / "wrong.toml").write_text(f"[[datasets]]\nbatch_size = 'two'\nresolution = 512\n[[datasets.subsets]]\nimage_dir = '{folders}'\n")
    replace = {"EMPTY": str(tmp_path / "empty"), "BAD_TOML": str(tmp_path / "bad.toml"), "TRAIN": str(folders / "train"),
               "WRONG_TYPE": str(tmp_path / "wrong.toml"), "TINY": str(tmp_path / "tiny")}  # fmt: skip
    args = {k: replace.get(v, v) if isinstance(v, str) else v for k, v in args.items()}
    with pytest.raises(OptionError) as error:
        dataset_count.count(args)
    assert error.value.flag == flag
    assert " / " in str(error.value) and ("allowed" in str(error.value) or "missing" in str(error.value))


def test_pure_module_imports_only_the_standard_library():
    import subprocess

    code = "import sys, sdsched_plugin.run.layout; bad = [m for m in ('torch', 'numpy', 'PIL', 'library') if m in sys.modules]; print(bad)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


# ---------------------------------------------------------------------------------------------
# musubi-tuner: the latent caches are its dataset


def write_cache(path: Path, keys=("latents_8x8_float32",)) -> None:
    """A minimal .safetensors file (header + 4 bytes a tensor), standard library only."""
    header = {key: {"dtype": "F32", "shape": [1], "data_offsets": [4 * i, 4 * i + 4]} for i, key in enumerate(keys)}
    data = json.dumps(header).encode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(struct.pack("<Q", len(data)) + data + b"\0" * 4 * len(keys))


def musubi_caches(root: Path) -> Path:
    """An image dataset's caches and a video dataset's caches for architecture "hv" (HunyuanVideo: images and videos)."""
    img = root / "cache_img"
    for key, (w, h) in {"a": SQUARE, "b": SQUARE, "c": WIDE, "d": WIDER, "e": TALL}.items():
        write_cache(img / f"{key}_{w:04d}x{h:04d}_hv.safetensors")
        if key != "e":  # e has no text encoder cache: musubi-tuner skips it
            write_cache(img / f"{key}_hv_te.safetensors")
    write_cache(img / "f_0064x0064_hv.safetensors", keys=("latents_8x8_float32", "latents_control_0_1x8x8_bfloat16"))
    write_cache(img / "f_hv_te.safetensors")
    vid = root / "cache_vid"
    for name in ("v1_00000-017", "v1_00017-017", "v2_00000-009"):
        write_cache(vid / f"{name}_0096x0064_hv.safetensors")
    for key in ("v1", "v2"):
        write_cache(vid / f"{key}_hv_te.safetensors")
    config = root / "musubi.toml"
    config.write_text(
        f"""
[general]
resolution = [512, 512]
caption_extension = ".txt"

[[datasets]]
image_directory = '{root / "images"}'
cache_directory = '{img}'
enable_bucket = true
batch_size = 2
num_repeats = 3

[[datasets]]
video_directory = '{root / "videos"}'
cache_directory = '{vid}'
batch_size = 2
target_frames = [17]
""",
        encoding="utf-8",
    )
    return config


def test_musubi_counts_its_latent_caches(tmp_path):
    # BucketSelector((512,512), steps 16): w from 256 to 512 by 16, h = (262144 // w) cut to 16,
    # both ways round: ... (416,624) (448,576) ... (512,512) ... (576,448) (624,416) (640,400)
    # (672,384) (704,368) (736,352) ...
    # image dataset, 3 repeats, batch 2: a, b 64x64 -> (512,512): 6 -> 3 batches; c 96x64 (1.5)
    #   -> (624,416) (exactly 1.5): 3 -> 2; d 128x64 (2.0) -> (704,368) (1.913, error .087 <
    #   (736,352) 2.091, .091): 3 -> 2; e: no text encoder cache, skipped; f 64x64 with a control
    #   latent: its own (512,512)+control bucket: 3 -> 2                         => 9 batches
    # video dataset, no buckets: (512,512) by frame count: 17 frames x2 -> 1, 9 frames x1 -> 1 => 2
    # 11 batches; 2 epochs, accumulation 2 on 2 processes: 2 * ceil(11/2/2 = 2.75) = 6 steps,
    # per process ceil(11/2) = 6 batches, 3 steps per epoch
    config = musubi_caches(tmp_path)
    args = {"dataset_config": str(config), "max_train_epochs": 2, "gradient_accumulation_steps": 2}
    run = musubi_count.count_musubi(args, 2, architecture="hv")
    assert (run.batches, run.batches_per_epoch, run.steps_per_epoch, run.max_train_steps, run.epochs) == (11, 6, 3, 6, 2)
    assert [d.batches for d in run.datasets] == [9, 2]
    assert run.source == "latent caches" and not run.estimate
    if MUSUBI_TUNER_DIR is not None:  # musubi-tuner's own dataset code on the same caches
        src = MUSUBI_TUNER_DIR / "src" if (MUSUBI_TUNER_DIR / "src").is_dir() else MUSUBI_TUNER_DIR
        if str(src) not in sys.path:
            sys.path.insert(0, str(src))
        config_utils = importlib.import_module("musubi_tuner.dataset.config_utils")
        namespace = argparse.Namespace(dataset_config=str(config), debug_dataset=False)
        blueprint = config_utils.BlueprintGenerator(config_utils.ConfigSanitizer()).generate(
            config_utils.load_user_config(str(config)), namespace, architecture="hv"
        )
        group = config_utils.generate_dataset_group_by_blueprint(blueprint.dataset_group, training=True)
        assert [len(d) for d in group.datasets] == [9, 2]
        assert len(group) == run.batches


def test_musubi_images_not_cached_yet_are_an_estimate(tmp_path):
    # no caches: the image dataset is counted from its images (a, b square, c wide: 3 x1 repeat,
    # batch 1 -> (512,512) 2, (624,416) 1 -> 3 batches), marked as an estimate
    make_images(tmp_path / "images", [SQUARE, SQUARE, WIDE])
    config = tmp_path / "m.toml"
    config.write_text(f"[[datasets]]\nresolution = 512\nenable_bucket = true\nimage_directory = '{tmp_path / 'images'}'\n")
    run = musubi_count.count_musubi({"dataset_config": str(config), "max_train_epochs": 4}, architecture="wan")
    assert (run.batches, run.max_train_steps) == (3, 12)
    assert run.estimate and run.source == "folder layout" and any("cache" in note for note in run.notes)


def test_musubi_video_without_caches_is_refused(tmp_path):
    (tmp_path / "videos").mkdir()
    config = tmp_path / "m.toml"
    config.write_text(f"[[datasets]]\nvideo_directory = '{tmp_path / 'videos'}'\n")
    with pytest.raises(OptionError) as error:
        musubi_count.count_musubi({"dataset_config": str(config)}, architecture="hv")
    assert error.value.flag == "--dataset_config [[datasets]] #1 cache_directory"


@pytest.mark.skipif(SD_SCRIPTS_DIR is None, reason="needs SD_SCRIPTS_DIR (a real sd-scripts checkout)")
@pytest.mark.parametrize("case", ["missing_reg", "empty", "bad_toml", "min_bucket_reso"])
def test_count_run_rejects_what_the_fallback_rejects(folders, tmp_path, case):
    (tmp_path / "empty").mkdir()
    (tmp_path / "bad.toml").write_text("[[datasets]\nbatch_size = ")
    base = ["--resolution=512", f"--train_data_dir={folders / 'train'}"]
    argv, flag = {
        "missing_reg": (base + [f"--reg_data_dir={tmp_path / 'nope'}"], "--reg_data_dir"),
        "empty": (["--resolution=512", f"--train_data_dir={tmp_path / 'empty'}"], "--train_data_dir"),
        "bad_toml": ([f"--dataset_config={tmp_path / 'bad.toml'}"], "--dataset_config"),
        "min_bucket_reso": (base + ["--enable_bucket", "--min_bucket_reso=640"], "--train_data_dir"),
    }[case]
    with pytest.raises(OptionError) as error:
        sd_count(["--pretrained_model_name_or_path", "unused", *argv])
    assert error.value.flag == flag
    with pytest.raises(OptionError):
        dataset_count.count(_pure_namespace(argv))


@pytest.mark.skipif(SD_SCRIPTS_DIR is None, reason="needs SD_SCRIPTS_DIR (a real sd-scripts checkout)")
def test_count_run_leaves_no_trace(folders, capsys):
    # the preview runs count_run before anything else: it must not print, consume the random
    # state, keep a caching strategy, or change the caller's namespace
    import copy
    import logging
    import random

    argv = ["--pretrained_model_name_or_path", "unused", f"--train_data_dir={folders / 'train'}", "--resolution=512,512",
            "--enable_bucket", "--seed=3", "--max_train_epochs=2"]  # fmt: skip
    args = sd_args(argv)
    before = copy.deepcopy(vars(args))
    capsys.readouterr()
    random.seed(123)
    state = random.getstate()
    handlers = logging.getLogger().handlers[:]
    from sdsched_plugin.run import sd_scripts

    run = sd_scripts.count_run(args, 1)
    assert run.max_train_steps == 2 * run.batches
    assert random.getstate() == state
    assert logging.getLogger().handlers == handlers
    assert vars(args) == before  # resolution is still the string "512,512"
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
    if (SD_SCRIPTS_DIR / "library" / "strategy_base.py").is_file():
        assert sd_module("library.strategy_base").LatentsCachingStrategy.get_strategy() is None
