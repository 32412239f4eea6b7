"""The patch of kohya-ss/sd-scripts' ``library.train_util``.

Every sd-scripts training script calls these functions through the module, right where the
plugin needs to be: ``add_optimizer_arguments`` (our flags join the scheduler flags),
``read_config_from_file`` (right after parsing, TOML or not, before the model loads: bad
values fail here), ``get_scheduler_fix`` (a floored schedule, or sd-scripts' own) and
``get_sai_model_spec`` (the metadata of every model it saves: the schedule joins it). Nothing
in sd-scripts imports them by name, and the startup hook patches the module as soon as its
body has run, before any script builds its parser.

The dataset hook (``config_util``) also names a dataset that cannot be read, in one line with the
file and why, English / 日本語, before the model loads: ``DatasetError`` (exit 2 in training; the
preview shows the same line). The preview's counter (``run.sd_scripts``) reads sd-scripts' errors
through ``explain`` too.
"""

from __future__ import annotations

import importlib
import os
import sys

from ..schedule.options import OptionError
from . import patching

MODULE_NAME = "library.train_util"


def patches(module) -> list[patching.Patch]:
    return [
        patching.Patch(module, "add_optimizer_arguments", ("parser",), patching.add_flags_after),
        patching.Patch(module, "read_config_from_file", ("args", "parser"), patching.check_after_reading_config),
        patching.Patch(module, "get_scheduler_fix", ("args", "optimizer", "num_processes"), patching.build_or_delegate),
    ]


# The metadata builders every save path merges into the model file: the schedule joins them.
# Optional: a release without them (before v0.7.0) still gets the schedules, its models not the key.
METADATA_BUILDERS = {
    "get_sai_model_spec": patching.add_schedule_to_metadata,  # v0.7.0 and later: every script
    "get_sai_model_spec_dataclass": patching.add_schedule_to_metadata_object,  # v0.10 and later: Anima, HunyuanImage
}


def optional_patches(module) -> list[patching.Patch]:
    """The metadata builders this release has, as the plugin knows them (one it does not know is
    left alone, without a warning: the schedules work all the same)."""
    found = [patching.Patch(module, name, ("state_dict", "args"), wrapper, prefix=True) for name, wrapper in METADATA_BUILDERS.items()]
    return [patch for patch in found if patch.mismatch() is None]


def config_patches(module) -> list[patching.Patch]:
    """``config_util.generate_dataset_group_by_blueprint``: every script that reads a dataset
    config or a train_data_dir calls it through the module, after parsing and before loading
    the model. An epoch-based run is checked there (the step count exists from then on), and a
    dataset that cannot be read is named. ``load_user_config``: a dataset config with a syntax
    error is named with its line. ``BlueprintGenerator.generate``: one its schema refuses (a key
    it does not know, a value of the wrong type) is named with sd-scripts' own reason."""
    return [
        patching.Patch(module, "load_user_config", ("file",), named_config_errors),
        patching.Patch(getattr(module, "BlueprintGenerator", None), "generate", GENERATE_PARAMS, named_schema_errors, method=True),
        patching.Patch(module, "generate_dataset_group_by_blueprint", ("dataset_group_blueprint",), named_dataset_errors),
    ]


GENERATE_PARAMS = ("self", "user_config", "argparse_namespace")  # every release since v0.7.0


# --- naming a dataset that cannot be read -------------------------------------------------------


class DatasetError(OptionError):
    """A dataset sd-scripts cannot read, in one line: the flag, the file (``value``), why and what
    would work (the bilingual OptionError)."""


# depth of ``raising_to_caller`` blocks: the preview's count wants the error, not an exit
_to_caller: list[bool] = []


class raising_to_caller:
    """Within it, the dataset hook raises DatasetError instead of exiting (the preview's count)."""

    def __enter__(self):
        _to_caller.append(True)

    def __exit__(self, *exc):
        _to_caller.pop()
        return False


def _fail(error: DatasetError):
    """In training (the arguments were read by the patched read_config_from_file): the line and
    exit 2, no traceback, the model not loaded. Elsewhere (the preview): raise it."""
    if _to_caller or patching.training_args() is None:
        raise error
    prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else "sd-scripts"
    print(f"{prog}: error: {error}", file=sys.stderr)
    raise SystemExit(2)


def config_error(path, error: Exception) -> DatasetError:
    """A TOML / JSON dataset config that does not parse: the file and the line."""
    line = getattr(error, "lineno", None)
    if line is None:  # toml's TomlDecodeError says "... (line 3 column 1 char 20)"
        import re

        match = re.search(r"line (\d+)", str(error))
        line = match and int(match.group(1))
    return DatasetError(
        "--dataset_config", str(path),
        f"a TOML / JSON file that parses; line {line}: {error}" if line else f"a TOML / JSON file that parses: {error}",
        f"TOML / JSON の書式が正しくありません({line} 行目): {error}" if line else f"TOML / JSON の書式が正しくありません: {error}",
    )  # fmt: skip


def named_config_errors(original, file, *args, **kwargs):
    """Around config_util.load_user_config: sd-scripts logs the file and re-raises the parser's
    error, which ends in a traceback."""
    try:
        return original(file, *args, **kwargs)
    except ValueError as error:  # TomlDecodeError, JSONDecodeError; sd-scripts' own "file not found" / format
        if " / " not in str(error):  # the TOML / JSON parser's, not sd-scripts' own bilingual one
            _fail(config_error(file, error))
        en, _, ja = str(error).partition(" / ")
        _fail(DatasetError("--dataset_config", str(file), f"an existing .toml or .json file ({en})", ja))


def where_the_dataset_is(args) -> tuple[str, str | None]:
    """The flag and value that name the dataset of a run, for a line about it."""
    for flag in ("dataset_config", "in_json", "train_data_dir"):
        if getattr(args, flag, None) is not None:
            return f"--{flag}", str(getattr(args, flag))
    return "--train_data_dir", None


def named_schema_errors(original, user_config, argparse_namespace, *args, **kwargs):
    """Around config_util.BlueprintGenerator.generate: sd-scripts' schema (voluptuous) refuses a
    dataset config or a dataset flag; sd-scripts logs "Invalid user config" and re-raises, which
    ends in a traceback."""
    try:
        return original(user_config, argparse_namespace, *args, **kwargs)
    except Exception as error:
        if not type(error).__module__.startswith("voluptuous"):
            raise
        flag, value = where_the_dataset_is(argparse_namespace)
        _fail(
            DatasetError(
                flag, value, f"a dataset config that sd-scripts accepts: {error}", f"sd-scripts がデータセット設定を受け付けません: {error}"
            )
        )


def _bucket_fix(dataset, manager_class, width: int, height: int) -> str:
    """A --resolution (in bucket_reso_steps) at which sd-scripts' own BucketManager buckets this
    image with --bucket_no_upscale, or "" when none up to 4x does."""
    steps = dataset.bucket_reso_steps
    base = max(dataset.width, dataset.height)
    for side in range(base + steps - base % steps, 4 * base + 1, steps):
        try:
            manager = manager_class(True, (side, side), None, None, steps)
            reso = manager.select_bucket(width, height)[0]
        except (ZeroDivisionError, AssertionError):
            continue
        if min(reso) > 0:
            return str(side)
    return ""


def _bucket_error(dataset, path, width: int, height: int) -> DatasetError:
    steps = dataset.bucket_reso_steps
    setting = f"--bucket_no_upscale, resolution {dataset.width}x{dataset.height}, bucket_reso_steps {steps}"
    fix = _bucket_fix(dataset, type(dataset.bucket_manager), width, height)
    fix_en = f" with --resolution={fix}," if fix else ""
    fix_ja = f"--resolution={fix} にするか、" if fix else ""
    return DatasetError(
        "--bucket_no_upscale", path,
        f"{width}x{height} has a bucket side of 0 with {setting} (sd-scripts stops with ZeroDivisionError);"
        f" works{fix_en} without --bucket_no_upscale, or with an image at least {steps} px on each side",
        f"{width}x{height} の画像は {setting} で bucket の辺が 0 になります。{fix_ja}--bucket_no_upscale を外すか、各辺 {steps} ピクセル以上の画像にしてください",
    )  # fmt: skip


def explain(error: BaseException) -> DatasetError | None:
    """The image sd-scripts' dataset code stopped at, from the frames of the error: make_buckets
    divides by a bucket side of 0 (a side below bucket_reso_steps with --bucket_no_upscale) or
    by an image size of 0 (``get_image_size`` could not read the file: not an image, cut short)."""
    if isinstance(error, DatasetError):
        return error
    frames = []
    tb = error.__traceback__
    while tb is not None:
        frames.append(tb.tb_frame)
        tb = tb.tb_next
    for frame in reversed(frames):
        if frame.f_code.co_name != "make_buckets":
            continue
        local = frame.f_locals
        info, dataset = local.get("image_info") or local.get("info"), local.get("self")
        if info is None or dataset is None:
            return None
        path = getattr(info, "absolute_path", None) or getattr(info, "image_key", "?")
        width, height = info.image_size or (0, 0)
        if width <= 0 or height <= 0:
            return DatasetError(
                "image", path, "an image whose size can be read; this file is not an image sd-scripts reads, or is cut short: replace or remove it",
                "サイズを読める画像にしてください。sd-scripts が読めない形式か、ファイルが途中で切れています。差し替えるか削除してください",
            )
        return _bucket_error(dataset, path, width, height)
    return None


def _cut_short(path: str) -> bool:
    """A PNG without its IEND chunk near the end, a JPEG without an end marker after its first
    scan, or a WebP shorter than its RIFF header says: the header (all that ``imagesize`` reads
    while counting) is whole, the pixels are not, and training would stop at the image ("image
    file is truncated") after loading the model."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            f.seek(0, os.SEEK_END)
            size = f.tell()
            if head.startswith(b"\x89PNG"):
                f.seek(max(0, size - 4096))
                return b"IEND" not in f.read()
            if head.startswith(b"\xff\xd8"):
                return _jpeg_cut_short(f, size)
            if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
                return int.from_bytes(head[4:8], "little") + 8 > size
    except OSError:
        return True
    return False


def _jpeg_cut_short(f, size: int) -> bool:
    """No end marker (FF D9) after the first scan. Nearly every JPEG ends with it: one seek. Valid
    files may carry data after it (a motion photo's video, a camera's trailer), so when the last
    bytes are not the marker, the segments are walked by their lengths to the first scan (skipping
    an EXIF thumbnail's own markers) and the marker is looked for after it: in entropy-coded data
    FF is always stuffed, so FF D9 there is the end marker and nothing else."""
    f.seek(size - 2)
    if f.read(2) == b"\xff\xd9":
        return False
    f.seek(2)
    while True:  # the segments before the first scan (SOS, FF DA)
        marker = f.read(2)
        while len(marker) == 2 and marker[0] == 0xFF and marker[1] == 0xFF:  # fill bytes
            marker = marker[1:] + f.read(1)
        if len(marker) < 2 or marker[0] != 0xFF:
            return True
        if marker[1] == 0xDA:
            break
        if marker[1] == 0x01 or 0xD0 <= marker[1] <= 0xD7:  # markers without a length
            continue
        length = f.read(2)
        if len(length) < 2:
            return True
        f.seek(int.from_bytes(length, "big") - 2, os.SEEK_CUR)
    import mmap  # only for the rare JPEG with data after its end: a find over the file, at C speed

    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return data.find(b"\xff\xd9", f.tell()) < 0


def check_group(group) -> None:
    """The images of a built dataset group that training would stop at after loading the model:
    a bucket side of 0 (--bucket_no_upscale with a side below bucket_reso_steps: the resize
    divides by it) or a file cut short. Raises DatasetError naming the first."""
    for dataset in getattr(group, "datasets", []):
        inner = getattr(dataset, "dreambooth_dataset_delegate", dataset)  # ControlNetDataset wraps a DreamBoothDataset
        for info in getattr(inner, "image_data", {}).values():
            path = getattr(info, "absolute_path", None) or info.image_key
            reso = getattr(info, "bucket_reso", None)
            if reso is not None and min(reso) <= 0:
                raise _bucket_error(inner, path, *info.image_size)
            if isinstance(path, str) and os.path.isfile(path) and _cut_short(path):
                raise DatasetError(
                    "image", path, "a whole image file; this one is cut short (its header is whole, its pixels are not): replace or remove it",
                    "途中で切れていない画像にしてください。このファイルは途中で切れています。差し替えるか削除してください",
                )


def _has_images(folder: str) -> bool:
    try:
        return any(os.path.splitext(name)[1].lower() in (".png", ".jpg", ".jpeg", ".webp", ".bmp") for name in os.listdir(folder))
    except OSError:
        return False


def check_folders(args) -> None:
    """The command line's folders, which sd-scripts turns into subsets silently: a missing
    --train_data_dir / --reg_data_dir, or a --train_data_dir without ``N_name`` subfolders
    (sd-scripts: "No data found" and an exit without training; a reg folder without them: a
    run without regularization images). Raises DatasetError."""
    if getattr(args, "dataset_config", None) is not None or getattr(args, "in_json", None) is not None:
        return
    folders = [(flag, str(getattr(args, flag))) for flag in ("train_data_dir", "reg_data_dir") if getattr(args, flag, None) is not None]
    for flag, folder in folders:
        if not os.path.isdir(folder):
            raise DatasetError(f"--{flag}", folder, "an existing folder", "存在するフォルダを指定してください")
    if getattr(args, "conditioning_data_dir", None) is not None and not hasattr(args, "reg_data_dir"):
        return  # a ControlNet script: the images are in the folder itself
    for flag, folder in folders:
        names = [entry.name for entry in os.scandir(folder) if entry.is_dir()]
        if not any(name.split("_")[0].isdigit() and int(name.split("_")[0]) >= 1 for name in names):
            loose = " (its images are directly in it)" if _has_images(folder) else ""
            loose_ja = "(画像が直接置かれています)" if loose else ""
            raise DatasetError(
                f"--{flag}", folder,
                f"a folder with subfolders named N_name such as 10_cat (N = repeats); it has none{loose}",
                f"10_cat のような「繰り返し回数_名前」のサブフォルダを持つフォルダを指定してください{loose_ja}",
            )  # fmt: skip


def named_dataset_errors(original, *args, **kwargs):
    """Around config_util.generate_dataset_group_by_blueprint: a dataset that cannot be read is
    named (``DatasetError``) instead of ending in a traceback or a run without data; then the
    epoch check of ``patching.check_after_dataset``."""
    try:
        if patching.training_args() is not None and not _to_caller:
            check_folders(patching.training_args())
        result = patching.check_after_dataset(original, *args, **kwargs)
        check_group(result[0] if isinstance(result, tuple) else result)
        return result
    except DatasetError as error:
        _fail(error)
    except Exception as error:
        named = explain(error)
        if named is None:
            raise
        _fail(named)


def activate_config_util(module) -> None:
    """The startup hook's entry for ``library.config_util``."""
    patching.install(config_patches(module), "sd-scripts' config_util")


def install(module=None) -> bool:
    """Patch sd-scripts' train_util (imported if not given). Idempotent; False, with one warning,
    when the module is not sd-scripts' train_util (the package name ``library`` is generic)."""
    if module is None:
        module = importlib.import_module(MODULE_NAME)
    installed = patching.install(patches(module), "sd-scripts' train_util")
    if installed:
        patching.install(optional_patches(module), "sd-scripts' train_util")
    return installed


def uninstall() -> None:
    """Restore every patched function (of every host program)."""
    patching.uninstall()


def is_installed(module=None) -> bool:
    module = module or sys.modules.get(MODULE_NAME)
    return module is not None and patching.is_installed(patches(module))


def activate(module) -> None:
    """The startup hook's entry (see ``_sdsched_plugin_boot``): patch the module that just finished importing."""
    install(module)
