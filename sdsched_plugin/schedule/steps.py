"""A run's length in sd-scripts' terms: the dataset counts and train_network.py's arithmetic from the
dataset group's length to steps per epoch, total steps and epochs. Standard library only.

One place for that arithmetic: training's early check (``arguments.check_epoch_run``) and every
count of the preview (``run.layout``, ``run.sd_scripts``, ``run.musubi``) use it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetCount:
    """One dataset of the group, as sd-scripts' ``[Dataset i]`` log describes it."""

    kind: str  # "dreambooth", "fine-tuning" or "controlnet"
    batch_size: int
    resolution: tuple[int, int]
    enable_bucket: bool
    subsets: tuple[tuple[str, int, int, bool], ...]  # (image_dir or metadata_file, images, num_repeats, is_reg)
    num_train_images: int  # images x repeats, "num train images * repeats"
    num_reg_images: int  # reg images x their folder's repeats, "num reg images" (before balancing)
    buckets: tuple[tuple[tuple[int, int], int], ...]  # ((width, height), images incl. repeats), sorted
    batches: int  # the dataset's len(): sum over buckets of ceil(count / batch_size)


@dataclass(frozen=True)
class RunCount:
    """The run's size in sd-scripts' terms.

    ``batches``: the dataset group's length, every process's batches of one epoch together;
    ``batches_per_epoch``: one process's share, ``ceil(batches / processes)``: what train_network.py
    prints as "num batches per epoch / 1epochのバッチ数" (the data loader after accelerate split it);
    ``steps_per_epoch``: optimizer updates per epoch, ``ceil(batches_per_epoch / accumulation)``;
    ``max_train_steps``: the "total optimization steps / 学習ステップ数" line;
    ``epochs``: "num epochs / epoch数", ``ceil(max_train_steps / steps_per_epoch)``.
    """

    batches: int
    batches_per_epoch: int
    steps_per_epoch: int
    max_train_steps: int
    epochs: int
    num_processes: int = 1
    gradient_accumulation_steps: int = 1
    max_train_epochs: int | None = None
    num_train_images: int = 0
    num_reg_images: int = 0
    source: str = "folder layout"  # or "sd-scripts"
    estimate: bool = False
    notes: tuple[str, ...] = ()
    datasets: tuple[DatasetCount, ...] = ()


def run_steps(
    batches: int,
    num_processes: int = 1,
    gradient_accumulation_steps: int = 1,
    max_train_epochs: int | None = None,
    max_train_steps: int = 1600,
) -> tuple[int, int, int, int]:
    """train_network.py's arithmetic: (batches_per_epoch, steps_per_epoch, max_train_steps, epochs)
    from the dataset group's length. ``max_train_epochs`` overrides ``max_train_steps``, computed
    before accelerate splits the data loader, with float division as sd-scripts writes it."""
    if max_train_epochs is not None:
        max_train_steps = max_train_epochs * math.ceil(batches / num_processes / gradient_accumulation_steps)
    batches_per_epoch = math.ceil(batches / num_processes)  # accelerate's BatchSamplerShard, even_batches
    steps_per_epoch = math.ceil(batches_per_epoch / gradient_accumulation_steps)
    epochs = math.ceil(max_train_steps / steps_per_epoch) if steps_per_epoch else 0
    return batches_per_epoch, steps_per_epoch, max_train_steps, epochs


def run_count(batches: int, num_processes: int, accumulation: int, epochs_flag, steps_flag, **counted) -> RunCount:
    """A RunCount from the dataset group's length, with train_network.py's arithmetic; ``counted``:
    the image counts, source, estimate, notes and datasets of whoever counted."""
    batches_per_epoch, steps_per_epoch, max_train_steps, epochs = run_steps(batches, num_processes, accumulation, epochs_flag, steps_flag)
    return RunCount(
        batches=batches,
        batches_per_epoch=batches_per_epoch,
        steps_per_epoch=steps_per_epoch,
        max_train_steps=max_train_steps,
        epochs=epochs,
        num_processes=num_processes,
        gradient_accumulation_steps=accumulation,
        max_train_epochs=epochs_flag,
        **counted,
    )
