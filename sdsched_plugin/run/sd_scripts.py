"""Reading a run with sd-scripts' own code: the training script's own parser (``read_training_args``)
and its dataset code (``count_run``), as train_network.py does before it loads a model
(``layout`` is the fallback for when sd-scripts is not importable).
"""

from __future__ import annotations

import importlib
import os
import sys

from ..hosts import patching
from ..hosts import sd_scripts as host
from ..hosts.sd_scripts import MODULE_NAME, install
from ..schedule import options


def trainer_of(module):
    """The script's trainer object (``NetworkTrainer``, ``SdxlNetworkTrainer``, ...), whose latents
    caching strategy the dataset count sets as the script does; None for scripts without one."""
    trainers = [
        value for name, value in vars(module).items()
        if isinstance(value, type) and name.endswith("Trainer") and value.__module__ == module.__name__
    ]  # fmt: skip
    for cls in trainers:
        if hasattr(cls, "get_latents_caching_strategy"):
            try:
                return cls()
            except Exception:  # a trainer that needs more to be built: count with the default strategy
                return None
    return None


class Fallback(Exception):
    """sd-scripts' own code cannot read this run (the script does not import in this venv, has no
    ``setup_parser()``, or uses a custom ``--dataset_class``): one line saying so, in English /
    日本語; the preview goes on with the flags alone."""

    def __init__(self, en: str, ja: str):
        super().__init__(f"{en} / {ja}")


def read_training_args(script, script_args: list[str], num_processes: int):
    """(arguments, script module) of a training command as the script itself reads them: its own
    ``setup_parser()``, ``parse_args`` and (patched) ``read_config_from_file``, which also runs
    every check training makes at that point. Loads no model: the script's body only defines
    things and its ``__main__`` block does not run. Bad flags exit 2 with the script's usage."""
    folder = str(script.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    if not script.is_file():
        raise options.OptionError(
            "--", str(script), "an sd-scripts training script in that folder", "sd-scripts の学習スクリプトを指定してください"
        )
    import importlib.util  # only here: the startup hook's path never needs it

    spec = importlib.util.spec_from_file_location(f"_sdsched_script_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # e.g. train_textual_inversion_XTI.py with a diffusers it predates
        raise Fallback(
            f"{script.name} does not import here ({type(error).__name__}: {error}): read by sdsched from the flags",
            f"{script.name} をこの環境で import できません: フラグから sdsched が読みます",
        ) from None
    if not callable(getattr(module, "setup_parser", None)):
        raise Fallback(
            f"{script.name} has no setup_parser(): read by sdsched from the flags",
            f"{script.name} には setup_parser() がありません: フラグから sdsched が読みます",
        )
    install(importlib.import_module(MODULE_NAME))  # a no-op where the startup hook has patched it
    saved_argv, saved_world = sys.argv, os.environ.get("WORLD_SIZE")
    sys.argv = [str(script), *script_args]  # the parser's prog; read_config_from_file parses sys.argv again
    os.environ["WORLD_SIZE"] = str(num_processes)  # what accelerate launch would set
    try:
        parser = module.setup_parser()
        args = parser.parse_args(script_args)
        return sys.modules[MODULE_NAME].read_config_from_file(args, parser), module
    finally:
        patching.forget_read_arguments()
        sys.argv = saved_argv
        if saved_world is None:
            os.environ.pop("WORLD_SIZE", None)
        else:
            os.environ["WORLD_SIZE"] = saved_world


# --- counting the run with sd-scripts' own dataset code -----------------------------------------
# train_network.py builds its dataset group before it loads a model: the blueprint of the
# --dataset_config TOML (or of --train_data_dir / --reg_data_dir / --in_json), the datasets, and
# make_buckets, which reads each image's size from its header. count_run does exactly that and
# nothing more: no model, no tokenizer (sd-scripts up to v0.9.1 asks for one, but its datasets only
# read ``model_max_length`` from it), no pixels, no latents.


class _TokenizerStandIn:
    """What sd-scripts v0.7.0 .. v0.9.1 datasets read from the tokenizer while they are built
    (``BaseDataset.__init__``: ``tokenizers[0].model_max_length``); v0.10 and later take none."""

    model_max_length = 77


class _Captured:
    """sd-scripts' log records of the dataset build, kept instead of printed; tqdm bars and the
    print() of old versions go to a buffer."""

    def __init__(self):
        import logging

        self.records: list[str] = []
        handler = logging.Handler(logging.WARNING)
        handler.emit = lambda record: self.records.append(record.getMessage())
        self.handler = handler

    def __enter__(self):
        import contextlib
        import io
        import logging

        root = logging.getLogger()
        self._saved = (root.handlers[:], root.level)
        root.handlers[:] = [self.handler]
        self._redirect = contextlib.ExitStack()
        self._redirect.enter_context(contextlib.redirect_stdout(io.StringIO()))
        self._redirect.enter_context(contextlib.redirect_stderr(io.StringIO()))
        # sd-scripts' loggers may carry their own handlers (setup_logging); quiet them too
        self._loggers = []
        for name, item in list(logging.root.manager.loggerDict.items()):
            if isinstance(item, logging.Logger) and name.split(".")[0] == "library" and item.handlers:
                self._loggers.append((item, item.handlers[:]))
                item.handlers[:] = [self.handler]
        return self

    def __exit__(self, *exc):
        import logging

        self._redirect.close()
        root = logging.getLogger()
        root.handlers[:], level = self._saved
        root.setLevel(level)
        for item, handlers in self._loggers:
            item.handlers[:] = handlers
        return False


def _latents_strategy(trainer, args):
    """train_network.py sets the latents caching strategy before it builds the datasets (v0.10+):
    with it the datasets take image sizes from existing ``*_WxH_*.npz`` caches, and fine-tuning
    datasets need it. Returns an undo function."""
    try:
        from library import strategy_base
    except ImportError:  # sd-scripts before v0.10
        return lambda: None
    cls = strategy_base.LatentsCachingStrategy
    if cls.get_strategy() is not None:
        return lambda: None
    if trainer is not None and hasattr(trainer, "get_latents_caching_strategy"):
        strategy = trainer.get_latents_caching_strategy(args)
    else:
        from library import strategy_sd

        strategy = strategy_sd.SdSdxlLatentsCachingStrategy(
            True, getattr(args, "cache_latents_to_disk", False), getattr(args, "vae_batch_size", 1), getattr(args, "skip_cache_check", False)
        )
    cls.set_strategy(strategy)

    def undo():
        cls._strategy = None

    return undo


class Recipe:
    """How a training script builds its dataset group, told by the flags its own parser defines
    (sd-scripts' ``add_dataset_arguments(parser, support_dreambooth, support_caption,
    support_caption_dropout)`` and the ControlNet scripts' ``--conditioning_data_dir`` say exactly
    which kinds each script reads):

    - ControlNet / LLLite (``--conditioning_data_dir`` without DreamBooth's ``--reg_data_dir``; the
      scripts with both read it for ``--masked_loss``): ``ConfigSanitizer(False, False, True, True)``
      and ``generate_controlnet_subsets_config_by_subdirs``;
    - fine_tune.py (``--in_json``, no ``--reg_data_dir``): ``ConfigSanitizer(False, True, False, True)``,
      one fine-tuning subset;
    - train_db.py (``--reg_data_dir``, no ``--in_json``): ``ConfigSanitizer(True, False, masked_loss, True)``
      and ``prepare_dataset_args(args, False)``;
    - the textual inversion scripts (``--token_string``): no caption dropout;
    - everything else (train_network.py and its kin, sdxl_train.py, flux_train.py, ...): train_network.py's.
    """

    def __init__(self, args):
        self.controlnet = hasattr(args, "conditioning_data_dir") and not hasattr(args, "reg_data_dir")
        self.dreambooth = not self.controlnet and hasattr(args, "reg_data_dir")
        self.fine_tuning = not self.controlnet and hasattr(args, "in_json")
        self.dropout = not hasattr(args, "token_string")

    def sanitizer(self, config_util, args):
        third = True if self.controlnet else bool(getattr(args, "masked_loss", False))
        return config_util.ConfigSanitizer(self.dreambooth, self.fine_tuning, third, self.dropout)

    def user_config(self, config_util, args) -> dict:
        """The script's own choice, in its order."""
        if getattr(args, "dataset_config", None) is not None:
            return config_util.load_user_config(args.dataset_config)
        if self.controlnet:
            subsets = config_util.generate_controlnet_subsets_config_by_subdirs(
                args.train_data_dir, getattr(args, "conditioning_data_dir", None), getattr(args, "caption_extension", ".caption")
            )
        elif self.fine_tuning and (getattr(args, "in_json", None) is not None or not self.dreambooth):
            subsets = [{"image_dir": args.train_data_dir, "metadata_file": args.in_json}]
        else:
            subsets = config_util.generate_dreambooth_subsets_config_by_subdirs(args.train_data_dir, getattr(args, "reg_data_dir", None))
        return {"datasets": [{"subsets": subsets}]}


def _fill_dataset_defaults(train_util, args) -> None:
    """Give ``args`` the dataset flags its script does not define, at sd-scripts' defaults: the
    shared dataset code reads some of them whatever the script (train_db.py has no ``--in_json``,
    the ControlNet scripts no ``--reg_data_dir``); the script itself never sets them either."""
    import argparse

    parser = argparse.ArgumentParser(add_help=False)
    try:
        train_util.add_dataset_arguments(parser, True, True, True)
    except TypeError:  # another signature: leave args as the script made them
        return
    for name, value in vars(parser.parse_args([])).items():
        if not hasattr(args, name):
            setattr(args, name, value)


def _build_group(train_util, config_util, args, recipe: Recipe, trainer):
    """The script's dataset group from ``args`` (a copy: prepare_dataset_args rewrites it), built
    as the script builds it, its logs kept (returned) instead of printed; the random state, the
    latents caching strategy and the logging left as they were. sd-scripts' errors come back as
    OptionError: the dataset hook's named ones (``DatasetError``) as they are."""
    import random

    from ..schedule.options import OptionError

    where = host.where_the_dataset_is(args)
    random_state = random.getstate()
    captured = _Captured()
    try:
        with captured, host.raising_to_caller():
            train_util.prepare_dataset_args(args, recipe.fine_tuning)
            if getattr(args, "seed", None) is not None:
                random.seed(args.seed)  # train_network.py: set_seed(args.seed), then the datasets (a validation split shuffles with it)
            undo = _latents_strategy(trainer, args)
            try:
                blueprint = config_util.BlueprintGenerator(recipe.sanitizer(config_util, args)).generate(
                    recipe.user_config(config_util, args), args, tokenizer=_TokenizerStandIn()
                )
                group = config_util.generate_dataset_group_by_blueprint(blueprint.dataset_group)
            finally:
                undo()
    except OptionError:  # the dataset hook's DatasetError: the file and why
        raise
    except (AssertionError, ValueError, OSError, TypeError, KeyError, ZeroDivisionError) as error:
        named = host.explain(error)
        if named is not None:
            raise named from None
        raise OptionError(where[0], where[1], f"a dataset that sd-scripts accepts: {error}", f"sd-scripts がデータセットを読めません: {error}") from None
    finally:
        random.setstate(random_state)
    return group, captured.records


def count_run(args, num_processes: int = 1, *, trainer=None):
    """The run's size as sd-scripts computes it: its own BlueprintGenerator,
    generate_dataset_group_by_blueprint and make_buckets on ``args`` (the namespace that the
    training script's ``setup_parser()`` and ``train_util.read_config_from_file`` produced; not
    changed), then train_network.py's arithmetic. ``trainer``: the script's trainer object (e.g.
    ``sdxl_train_network.SdxlNetworkTrainer()``), whose latents caching strategy is set as the
    script sets it; SD 1.x/2.x's by default. Returns ``steps.RunCount`` (source
    "sd-scripts"). Raises ``options.OptionError`` with sd-scripts' own message when sd-scripts
    rejects the dataset; ``Fallback`` for a custom ``--dataset_class``; ImportError when sd-scripts
    is not importable."""
    import copy

    from ..schedule import steps
    from ..schedule.options import OptionError
    from . import layout

    train_util = importlib.import_module("library.train_util")
    config_util = importlib.import_module("library.config_util")
    if getattr(args, "dataset_class", None) is not None:
        raise Fallback(
            f"--dataset_class {args.dataset_class}: a custom dataset's length is known only to its own code; steps from the flags",
            f"独自のデータセットクラス({args.dataset_class})の長さは数えられません: ステップ数はフラグから求めます",
        )
    layout.check_folders(args)  # a mistyped --reg_data_dir is an error here, not a silent run without reg images
    host.check_folders(args)  # and a train_data_dir without N_name folders, as the training's dataset hook says
    patching.install(host.config_patches(config_util), "sd-scripts' config_util")  # the hook's named errors; a no-op where it is on
    recipe = Recipe(args)  # before the defaults below add the flags the script does not have
    args = copy.deepcopy(args)  # prepare_dataset_args rewrites resolution and face_crop_aug_range in place
    _fill_dataset_defaults(train_util, args)
    group, notes = _build_group(train_util, config_util, args, recipe, trainer)
    if isinstance(group, tuple):  # v0.10+: (training group, validation group or None)
        group = group[0]

    batches = len(group)
    if batches == 0:
        raise OptionError(
            *host.where_the_dataset_is(args),
            "a dataset with at least one image (train_data_dir is the parent of folders such as 10_name)",
            "画像が見つかりません(train_data_dir には 10_name のような画像フォルダの親フォルダを指定してください)",
        )
    epochs_flag = getattr(args, "max_train_epochs", None)
    accumulation = getattr(args, "gradient_accumulation_steps", 1)
    # sd-scripts' own bilingual warnings ("some of reg images are not used / ..."), without the
    # lists of file names that follow some of them
    notes = [message for index, message in enumerate(notes) if " / " in message and message not in notes[:index]]
    return steps.run_count(
        batches, num_processes, accumulation, epochs_flag, args.max_train_steps,
        num_train_images=group.num_train_images,
        num_reg_images=group.num_reg_images,
        source="sd-scripts",
        estimate=False,
        notes=tuple(notes),
        datasets=tuple(_dataset_summary(dataset) for dataset in group.datasets),
    )  # fmt: skip


def _dataset_summary(dataset):
    from ..schedule import steps

    inner = getattr(dataset, "dreambooth_dataset_delegate", dataset)  # ControlNetDataset wraps a DreamBoothDataset
    kind = {"DreamBoothDataset": "dreambooth", "FineTuningDataset": "fine-tuning", "ControlNetDataset": "controlnet"}.get(
        type(dataset).__name__, type(dataset).__name__
    )
    subsets = tuple(
        (
            getattr(subset, "metadata_file", None) or getattr(subset, "image_dir", None),
            getattr(subset, "img_count", 0),
            subset.num_repeats,
            bool(getattr(subset, "is_reg", False)),
        )
        for subset in inner.subsets
    )
    manager = inner.bucket_manager
    buckets = tuple(sorted((tuple(reso), len(bucket)) for reso, bucket in zip(manager.resos, manager.buckets) if len(bucket)))
    return steps.DatasetCount(
        kind=kind,
        batch_size=dataset.batch_size,
        resolution=(inner.width, inner.height),
        enable_bucket=bool(inner.enable_bucket),
        subsets=subsets,
        num_train_images=dataset.num_train_images,
        num_reg_images=dataset.num_reg_images,
        buckets=buckets,
        batches=len(dataset),
    )
