"""The LR each training image meets over a run (the wiki's first argument: with cosine to 0, the
images trained last are trained at an LR near 0).

One job: ``exposure(count, multipliers)``: every image of the counted run (``steps.RunCount``:
its datasets, their subsets with images and repeats) placed in the run's batches as sd-scripts
places them: every epoch each image ``repeats`` times, the appearances shuffled into the
dataset's batches, the batches of all datasets shuffled together (sd-scripts shuffles buckets
and batch order each epoch), ``processes x gradient accumulation`` batches to one update, the
epochs one after the other until the run's last update. Per image the sum and the mean of the
multiplier at the updates that hold it; summarised as min / 5th percentile / median / max of the
means and the shares of images below 10% and 50% of the peak, for the run and per subset.

sd-scripts' own order depends on its seed and on bucket details, so the images are placed in one
shuffled order of our own (a fixed seed): the summaries move little from order to order, and not
at all where every image appears once in the run (then they are the multipliers' own). Standard
library only.
"""

from __future__ import annotations

import math
import random

from ..schedule.steps import RunCount

SEED = 0


def _batches_of(dataset, rng: random.Random) -> list[list]:
    """One epoch of a dataset: its appearances (train images by id, reg images as None) shuffled
    into ``dataset.batches`` batches as even as can be."""
    appearances = []
    for index, (_, images, repeats, is_reg) in enumerate(dataset.subsets):
        appearances += [None if is_reg else (index, image) for image in range(images) for _ in range(repeats)]
    rng.shuffle(appearances)
    batches = max(1, dataset.batches)
    size, extra = divmod(len(appearances), batches)
    out, start = [], 0
    for b in range(batches):
        end = start + size + (1 if b < extra else 0)
        out.append(appearances[start:end])
        start = end
    return out


def _quantile(ordered: list[float], q: float) -> float:
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def summarize(means: list[float], peak: float) -> dict:
    ordered = sorted(means)
    n = len(ordered)
    return {
        "images": n,
        "min": ordered[0],
        "p5": _quantile(ordered, 0.05),
        "median": _quantile(ordered, 0.5),
        "max": ordered[-1],
        "below_10pct": sum(m < 0.1 * peak for m in ordered) / n,
        "below_50pct": sum(m < 0.5 * peak for m in ordered) / n,
    }


def per_image(count: RunCount, multipliers: list[float], seed: int = SEED) -> dict:
    """image id (dataset, subset, image) -> [sum of multipliers, appearances]."""
    rng = random.Random(seed)
    per_update = max(1, count.num_processes * count.gradient_accumulation_steps)
    sums: dict = {}
    for epoch in range(count.epochs):
        batches = [(d, batch) for d, dataset in enumerate(count.datasets) for batch in _batches_of(dataset, rng)]
        rng.shuffle(batches)
        for position, (d, batch) in enumerate(batches):
            update = epoch * count.steps_per_epoch + min(position // per_update, count.steps_per_epoch - 1)
            if update >= len(multipliers):
                break
            for image in batch:
                if image is not None:
                    entry = sums.setdefault((d, *image), [0.0, 0])
                    entry[0] += multipliers[update]
                    entry[1] += 1
    return sums


def exposure(count: RunCount, multipliers: list[float], seed: int = SEED) -> dict | None:
    """The summaries for ``--json``'s ``exposure`` (None where no image is known)."""
    sums = per_image(count, multipliers, seed)
    if not sums:
        return None
    peak = max(multipliers) or 1.0
    means = {image: total / seen for image, (total, seen) in sums.items()}
    once = all(seen == 1 for _, seen in sums.values())
    subsets = []
    for d, dataset in enumerate(count.datasets):
        for s, (name, images, repeats, is_reg) in enumerate(dataset.subsets):
            values = [mean for (dd, ss, _), mean in means.items() if (dd, ss) == (d, s)]
            if values and not is_reg:
                subsets.append({"subset": str(name), "repeats": repeats, **summarize(values, peak)})
    return {
        "order": "every image once: the multipliers' own" if once else f"one shuffled order (seed {seed}) of sd-scripts' kind",
        **summarize(list(means.values()), peak),
        "subsets": subsets,
    }
