"""Every sd-scripts training script counted by its own parser and dataset recipe, with the param
groups it builds; a dataset that cannot be read named in one line (file, why, what works), exit 2,
in the preview and in training.

Without SD_SCRIPTS_DIR: the pure parts (which recipe a script's flags give, the param groups of
each script's namespace, the dataset hook's messages around stand-in functions). With it: the
real scripts' parsers and dataset code, and real subprocesses for the CLI and training errors.
"""

from __future__ import annotations

import argparse
import io
import subprocess
import sys

import pytest

from conftest import SD_SCRIPTS_DIR, clip_tokenizer_cache, host_env
from sdsched_plugin.hosts import patching
from sdsched_plugin.hosts import sd_scripts as host
from sdsched_plugin.schedule import param_groups
from sdsched_plugin.run import sd_scripts as run_sd
from sdsched_plugin.schedule.options import OptionError

from test_dataset_count import SQUARE, TALL, WIDE, make_images, write_png

needs_sd_scripts = pytest.mark.skipif(SD_SCRIPTS_DIR is None, reason="needs SD_SCRIPTS_DIR (a real sd-scripts checkout)")


def ns(**values):
    return argparse.Namespace(**values)


# --- param groups: the ones each script builds, in its order ---------------------------------


@pytest.mark.parametrize(
    "values, groups",
    [
        # train_db.py: one group for U-Net and text encoder; two with --learning_rate_te; U-Net alone when stopped at once
        ({"stop_text_encoder_training": None, "learning_rate_te": None}, [("unet+textencoder", 1e-4)]),
        ({"stop_text_encoder_training": 100, "learning_rate_te": 5e-6}, [("unet", 1e-4), ("textencoder", 5e-6)]),
        ({"stop_text_encoder_training": -1, "learning_rate_te": 5e-6}, [("unet", 1e-4)]),
        # fine_tune.py: the text encoder only with --train_text_encoder
        ({"learning_rate_te": 5e-6, "train_text_encoder": False}, [("unet", 1e-4)]),
        ({"learning_rate_te": 5e-6, "train_text_encoder": True}, [("unet", 1e-4), ("textencoder", 5e-6)]),
        ({"learning_rate_te": None, "train_text_encoder": True}, [("unet+textencoder", 1e-4)]),
        # sdxl_train.py: "0 means not train"; --block_lr: one group per block, 0 left out
        ({"learning_rate_te1": 2e-5, "learning_rate_te2": 0.0, "train_text_encoder": True, "block_lr": None},
         [("unet", 1e-4), ("textencoder1", 2e-5)]),
        ({"learning_rate_te1": None, "learning_rate_te2": None, "train_text_encoder": False, "block_lr": "0,1e-5" + ",2e-5" * 21},
         [("unet block1", 1e-5)] + [(f"unet block{i}", 2e-5) for i in range(2, 23)]),
        # sd3_train.py: MMDiT, then CLIP-L / CLIP-G, T5 only with --train_t5xxl
        ({"learning_rate_te1": 1e-5, "learning_rate_te2": None, "learning_rate_te3": 3e-6, "train_text_encoder": True, "train_t5xxl": False},
         [("mmdit", 1e-4), ("clip_l", 1e-5), ("clip_g", 1e-4)]),
        # sdxl_train_control_net.py: the ControlNet, then the U-Net
        ({"control_net_lr": 3e-4}, [("controlnet", 3e-4), ("unet", 1e-4)]),
        # anima_train.py: get_anima_param_groups, a group at 0 frozen
        ({"self_attn_lr": 0.0, "cross_attn_lr": None, "mlp_lr": 5e-5, "mod_lr": None, "llm_adapter_lr": None},
         [("base", 1e-4), ("cross_attn", 1e-4), ("mlp", 5e-5), ("mod", 1e-4), ("llm_adapter", 1e-4)]),
        # flux_train.py, train_control_net.py, textual inversion: one group
        ({}, [("all", 1e-4)]),
        # a network script's parser without a network (anima_train_network.py also defines --self_attn_lr)
        ({"network_module": None, "self_attn_lr": 0.0}, [("all", 1e-4)]),
    ],
)  # fmt: skip
def test_each_script_has_the_param_groups_it_builds(values, groups):
    assert param_groups.param_groups(ns(learning_rate=1e-4, **values)) == groups  # the full-model scripts have no --network_module


# --- which dataset recipe a script's flags give ---------------------------------------------


@pytest.mark.parametrize(
    "flags, recipe",
    [
        ({"reg_data_dir", "in_json", "conditioning_data_dir", "masked_loss"}, (False, True, True, True)),  # train_network.py, sdxl_train.py ...
        ({"reg_data_dir", "conditioning_data_dir", "masked_loss"}, (False, True, False, True)),  # train_db.py
        ({"in_json"}, (False, False, True, True)),  # fine_tune.py
        ({"in_json", "conditioning_data_dir"}, (True, False, False, True)),  # train_control_net.py, sdxl_train_control_net_lllite.py
        ({"reg_data_dir", "in_json", "token_string"}, (False, True, True, False)),  # train_textual_inversion.py
    ],
)
def test_the_scripts_flags_say_how_it_builds_its_dataset(flags, recipe):
    read = run_sd.Recipe(ns(**{name: None for name in flags}))
    assert (read.controlnet, read.dreambooth, read.fine_tuning, read.dropout) == recipe


# --- the dataset hook names what it cannot read ----------------------------------------------


class _Dataset:  # what make_buckets' ``self`` has
    width = height = 128
    bucket_reso_steps = 64

    def __init__(self, manager):
        self.bucket_manager = manager


class _Info:
    def __init__(self, path, size):
        self.absolute_path, self.image_key, self.image_size = path, path, size


def _stopping_at(size):
    """A stand-in of sd-scripts' make_buckets that divides by a side of 0, as the real one does."""

    class Manager:
        def __init__(self, no_upscale, reso, *rest):
            self.area = reso[0] * reso[1]

        def select_bucket(self, width, height):  # a side below 64 at 128x128 ends at 0; 192x192 buckets 200x90 as 192x64
            return ((192, 64), None, 0) if self.area >= 192 * 192 else ((192, 0), None, 0)

    def make_buckets(self):
        for image_info in [_Info("/data/1_x/wide.png", size)]:
            image_info.image_size[0] / image_info.image_size[1]  # noqa: B018 - the division sd-scripts does
            1 / 0

    return lambda *args: make_buckets(_Dataset(Manager(True, (128, 128))))


def test_a_bucket_side_of_0_is_named_with_the_image_and_what_works(monkeypatch):
    monkeypatch.setattr(patching, "_last_read", [])
    with pytest.raises(OptionError) as error:
        host.named_dataset_errors(_stopping_at((200, 90)), None)
    assert str(error.value) == (
        "--bucket_no_upscale: got '/data/1_x/wide.png'; allowed: 200x90 has a bucket side of 0 with --bucket_no_upscale, "
        "resolution 128x128, bucket_reso_steps 64 (sd-scripts stops with ZeroDivisionError); works with --resolution=192, "
        "without --bucket_no_upscale, or with an image at least 64 px on each side / 指定値 '/data/1_x/wide.png' は使えません。"
        "200x90 の画像は --bucket_no_upscale, resolution 128x128, bucket_reso_steps 64 で bucket の辺が 0 になります。"
        "--resolution=192 にするか、--bucket_no_upscale を外すか、各辺 64 ピクセル以上の画像にしてください"
    )


def test_an_image_whose_size_cannot_be_read_is_named(monkeypatch):
    monkeypatch.setattr(patching, "_last_read", [])
    with pytest.raises(OptionError) as error:
        host.named_dataset_errors(_stopping_at((0, 0)), None)
    assert error.value.flag == "image" and error.value.value == "/data/1_x/wide.png"
    assert "not an image sd-scripts reads, or is cut short" in str(error.value)


def test_in_training_the_hook_exits_2_with_one_line(monkeypatch, capsys):
    monkeypatch.setattr(patching, "_last_read", [ns(dataset_config=None, in_json=None, train_data_dir=None), None])
    monkeypatch.setattr(sys, "argv", ["train_network.py"])
    with pytest.raises(SystemExit) as stop:
        host.named_dataset_errors(_stopping_at((200, 90)), None)
    assert stop.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("train_network.py: error: --bucket_no_upscale: got '/data/1_x/wide.png'")


class Invalid(Exception):
    """voluptuous' error, as sd-scripts' ConfigSanitizer raises it (the hook knows it by its module)."""


Invalid.__module__ = "voluptuous.error"


def test_a_dataset_config_its_schema_refuses_is_named_in_training(monkeypatch, capsys, tmp_path):
    config = str(tmp_path / "dataset.toml")
    args = ns(dataset_config=config, in_json=None, train_data_dir=None)
    monkeypatch.setattr(patching, "_last_read", [args, None])
    monkeypatch.setattr(sys, "argv", ["train_network.py"])

    def generate(user_config, argparse_namespace, **runtime_params):
        raise Invalid("extra keys not allowed @ data['general']['bogus_key']")

    with pytest.raises(SystemExit) as stop:
        host.named_schema_errors(generate, {}, args, tokenizer=None)
    assert stop.value.code == 2
    assert capsys.readouterr().err == (
        f"train_network.py: error: --dataset_config: got '{config}'; allowed: a dataset config that sd-scripts accepts: extra keys"
        f" not allowed @ data['general']['bogus_key'] / 指定値 '{config}' は使えません。sd-scripts がデータセット設定を受け付けません:"
        " extra keys not allowed @ data['general']['bogus_key']\n"
    )
    with pytest.raises(KeyError):  # anything else is sd-scripts' own error, untouched
        host.named_schema_errors(lambda *a, **k: {}["x"], {}, args)

def test_folders_the_command_line_names(tmp_path):
    write_png(tmp_path / "flat" / "a.png", 64, 64)
    with pytest.raises(OptionError) as error:
        host.check_folders(ns(dataset_config=None, in_json=None, train_data_dir=str(tmp_path / "flat"), reg_data_dir=None))
    assert str(error.value) == (
        f"--train_data_dir: got '{tmp_path / 'flat'}'; allowed: a folder with subfolders named N_name such as 10_cat "
        f"(N = repeats); it has none (its images are directly in it) / 指定値 '{tmp_path / 'flat'}' は使えません。"
        "10_cat のような「繰り返し回数_名前」のサブフォルダを持つフォルダを指定してください(画像が直接置かれています)"
    )
    with pytest.raises(OptionError, match="an existing folder") as error:
        host.check_folders(ns(dataset_config=None, in_json=None, train_data_dir=str(tmp_path), reg_data_dir=str(tmp_path / "nope")))
    assert error.value.flag == "--reg_data_dir"


def test_a_dataset_config_that_does_not_parse_is_named_with_its_line(tmp_path, monkeypatch):
    tomllib = pytest.importorskip("tomllib")

    bad = tmp_path / "dataset.toml"
    bad.write_text("[general]\nresolution = 512\n[[datasets]]\nbatch_size = \n")

    def load(file):
        with open(file, "rb") as f:
            return tomllib.load(f)

    monkeypatch.setattr(patching, "_last_read", [])
    with pytest.raises(OptionError) as error:
        host.named_config_errors(load, str(bad))
    assert error.value.flag == "--dataset_config" and error.value.value == str(bad)
    assert "line 4" in str(error.value) and "4 行目" in str(error.value)


def test_a_file_cut_short_after_its_header(tmp_path):
    write_png(tmp_path / "whole.png", 64, 64)
    (tmp_path / "cut.png").write_bytes((tmp_path / "whole.png").read_bytes()[:40])
    assert not host._cut_short(str(tmp_path / "whole.png"))
    assert host._cut_short(str(tmp_path / "cut.png"))



@pytest.mark.parametrize("progressive", [False, True])
def test_a_jpeg_is_cut_short_exactly_where_pillow_cannot_load_it(tmp_path, progressive):
    """sd-scripts loads each image with PIL after the model: the check agrees with PIL on whole files,
    files with data after their end marker (a motion photo's video), an EXIF thumbnail (markers of its
    own before the scan), a missing end marker and cuts anywhere after the header."""
    Image = pytest.importorskip("PIL.Image")
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 1
    Image.effect_noise((96, 64), 60).convert("RGB").save(buffer, "JPEG", progressive=progressive, exif=exif.tobytes())
    whole = buffer.getvalue()
    cases = {"whole": whole, "trailer": whole + b"\0" * 100 + b"ftypmp42" + bytes(range(256)) * 20, "no end marker": whole[:-2]}
    cases.update({f"cut at {n}": whole[:n] for n in range(40, len(whole) - 2, max(1, len(whole) // 25))})

    def pillow_fails(path):
        try:
            with Image.open(path) as image:
                image.convert("RGB")
            return False
        except OSError:
            return True

    for name, data in cases.items():
        path = tmp_path / f"{name}.jpg"
        path.write_bytes(data)
        assert host._cut_short(str(path)) == pillow_fails(path), name
    assert not host._cut_short(str(tmp_path / "trailer.jpg")) and host._cut_short(str(tmp_path / "no end marker.jpg"))

# --- the real scripts ------------------------------------------------------------------------


@pytest.fixture
def dataset(tmp_path):
    """img/5_char: 2 square, 1 wide, 1 tall (x5 = 20); reg/1_person: 2 square (balanced to 20)."""
    make_images(tmp_path / "img" / "5_char", [SQUARE, SQUARE, WIDE, TALL])
    make_images(tmp_path / "reg" / "1_person", [SQUARE, SQUARE], prefix="r")
    make_images(tmp_path / "cn" / "img", [SQUARE, WIDE, TALL])
    make_images(tmp_path / "cn" / "cond", [SQUARE, WIDE, TALL])
    return tmp_path


def _read(script, argv):
    args, module = run_sd.read_training_args(SD_SCRIPTS_DIR / script, argv, 1)
    return args, module


@needs_sd_scripts
@pytest.mark.parametrize(
    "script, extra, batches",
    [
        # 20 train + 20 reg images, buckets off, batch 2: 20 batches
        ("train_db.py", ["reg"], 20),
        ("sdxl_train.py", ["reg"], 20),
        ("train_textual_inversion.py", ["reg", "--token_string=sks", "--init_word=cat"], 20),
        # ControlNet: the folder itself, once each, 3 images at batch 2 in one bucket: 2 batches
        ("train_control_net.py", ["cn"], 2),
        ("sdxl_train_control_net_lllite.py", ["cn"], 2),
    ],
)
def test_each_script_is_counted_by_its_own_parser_and_dataset_recipe(dataset, script, extra, batches):
    folders = {
        "reg": [f"--train_data_dir={dataset / 'img'}", f"--reg_data_dir={dataset / 'reg'}"],
        "cn": [f"--train_data_dir={dataset / 'cn' / 'img'}", f"--conditioning_data_dir={dataset / 'cn' / 'cond'}"],
    }[extra[0]]
    argv = ["--pretrained_model_name_or_path=unused", "--resolution=64", "--train_batch_size=2", "--max_train_epochs=3", *folders, *extra[1:]]
    args, module = _read(script, argv)
    run = run_sd.count_run(args, 1, trainer=run_sd.trainer_of(module))
    assert (run.batches, run.max_train_steps) == (batches, 3 * batches)


@needs_sd_scripts
def test_fine_tune_reads_its_metadata(dataset):
    import json

    make_images(dataset / "ft", [SQUARE, SQUARE, SQUARE])
    (dataset / "meta.json").write_text(json.dumps({f"img{i:02d}.png": {"caption": "x"} for i in range(3)}))
    args, module = _read("fine_tune.py", ["--pretrained_model_name_or_path=unused", "--resolution=64", f"--train_data_dir={dataset / 'ft'}",
                                          f"--in_json={dataset / 'meta.json'}", "--max_train_epochs=2", "--dataset_repeats=2"])  # fmt: skip
    run = run_sd.count_run(args, 1, trainer=run_sd.trainer_of(module))
    assert (run.batches, run.max_train_steps) == (6, 12)


@needs_sd_scripts
def test_real_sd_scripts_bucket_side_of_0_is_named(tmp_path):
    write_png(tmp_path / "img" / "1_x" / "wide.png", 200, 90)
    args, module = _read("train_network.py", ["--pretrained_model_name_or_path=unused", f"--train_data_dir={tmp_path / 'img'}",
                                              "--resolution=128", "--min_bucket_reso=64", "--enable_bucket", "--bucket_no_upscale"])  # fmt: skip
    with pytest.raises(OptionError) as error:
        run_sd.count_run(args, 1)
    assert error.value.flag == "--bucket_no_upscale" and error.value.value == str(tmp_path / "img" / "1_x" / "wide.png")
    assert "200x90 has a bucket side of 0" in str(error.value) and "--resolution=192" in str(error.value)


def _cli(argv, tmp_path):
    return subprocess.run([sys.executable, "-m", "sdsched_plugin.cli", *argv], capture_output=True, text=True,
                          env=host_env(HF_HOME=str(tmp_path)), timeout=600)  # fmt: skip


def last_lines_of_preview_and_training(flags, tmp_path) -> list[str]:
    """``sdsched preview -- python train_network.py FLAGS`` and the real training with the same flags:
    each must exit 2 with no traceback (the model never loads: its path does not exist); their last
    lines, the preview's first."""
    flags = [*flags, f"--tokenizer_cache_dir={clip_tokenizer_cache(tmp_path / 'tokenizer')}",  # loaded before the dataset
             "--pretrained_model_name_or_path=/nonexistent", f"--output_dir={tmp_path / 'out'}", "--network_module=networks.lora"]  # fmt: skip
    preview = _cli(["preview", "--", "python", str(SD_SCRIPTS_DIR / "train_network.py"), *flags], tmp_path)
    training = subprocess.run([sys.executable, str(SD_SCRIPTS_DIR / "train_network.py"), *flags], capture_output=True, text=True,
                              env=host_env(HF_HOME=str(tmp_path)), cwd=SD_SCRIPTS_DIR, timeout=600)  # fmt: skip
    lines = []
    for process in (preview, training):
        assert process.returncode == 2 and "Traceback" not in process.stderr, process.stderr[-2000:]
        lines.append(process.stderr.strip().splitlines()[-1])
    return lines


@needs_sd_scripts
def test_the_preview_and_training_name_an_unreadable_image_in_one_line(tmp_path):
    write_png(tmp_path / "img" / "1_x" / "ok.png", 64, 64)
    (tmp_path / "img" / "1_x" / "broken.png").write_bytes(b"not a png")
    lines = last_lines_of_preview_and_training([f"--train_data_dir={tmp_path / 'img'}", "--resolution=64", "--max_train_epochs=2"], tmp_path)
    for line, prog in zip(lines, ("sdsched preview", "train_network.py")):
        assert line.startswith(f"{prog}: error: image: got '{tmp_path / 'img' / '1_x' / 'broken.png'}'; allowed: an image whose size can be read")


@needs_sd_scripts
def test_the_preview_and_training_name_a_dataset_config_sd_scripts_refuses(tmp_path):
    write_png(tmp_path / "img" / "ok.png", 64, 64)
    config = tmp_path / "dataset.toml"
    config.write_text(f'[general]\nresolution = 64\nbogus_key = 3\n[[datasets]]\n[[datasets.subsets]]\nimage_dir = "{tmp_path / "img"}"\n')
    lines = last_lines_of_preview_and_training([f"--dataset_config={config}", "--max_train_epochs=2"], tmp_path)
    for line, prog in zip(lines, ("sdsched preview", "train_network.py")):
        assert line.startswith(f"{prog}: error: --dataset_config: got '{config}'; allowed: a dataset config that sd-scripts accepts:")
        assert "bogus_key" in line


@needs_sd_scripts
def test_a_custom_dataset_class_falls_back_to_the_flags_in_one_line(tmp_path, capsys):
    from sdsched_plugin import cli

    argv = ["preview", "--json", "--", "python", str(SD_SCRIPTS_DIR / "train_network.py"), "--dataset_class=my.Dataset",
            f"--train_data_dir={tmp_path}", "--max_train_steps=77", "--pretrained_model_name_or_path=unused"]  # fmt: skip
    assert cli.main(argv) == 0
    out = capsys.readouterr()
    assert out.err.strip().splitlines()[-1] == (
        "sdsched preview: --dataset_class my.Dataset: a custom dataset's length is known only to its own code; steps from the flags"
        " / 独自のデータセットクラス(my.Dataset)の長さは数えられません: ステップ数はフラグから求めます"
    )
    assert '"steps": 77' in out.out
