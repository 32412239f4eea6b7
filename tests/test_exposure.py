"""The LR each training image meets (issue: does the floor help *my* run?): the wiki's arithmetic
for one epoch of cosine, the sums' bookkeeping, and the preview's lines for a counted dataset."""

import json
import math
import subprocess
import sys

import pytest

from conftest import host_env
from sdsched_plugin.run import exposure
from sdsched_plugin.schedule import curves
from sdsched_plugin.schedule.steps import DatasetCount, run_count


def counted(subsets, batch_size=1, epochs=1, processes=1, accumulation=1):
    """A RunCount of one DreamBooth dataset with ``subsets`` [(images, repeats)], unbucketed."""
    appearances = sum(images * repeats for images, repeats in subsets)
    batches = math.ceil(appearances / batch_size)
    dataset = DatasetCount("dreambooth", batch_size, (512, 512), False, tuple((f"{r}_s{i}", n, r, False) for i, (n, r) in enumerate(subsets)),
                           appearances, 0, (((512, 512), appearances),), batches)  # fmt: skip
    return run_count(batches, processes, accumulation, epochs, 1600, num_train_images=appearances, datasets=(dataset,))


def test_one_epoch_of_cosine_leaves_a_fifth_of_the_images_below_a_tenth_of_the_peak():
    """1 epoch, no repeats, batch 1, cosine without warmup: the images met after ~80% of the run
    (0.5 * (1 + cos(pi t)) < 0.1) are 1 - acos(-0.8) / pi = 0.2048 of them, whatever the order."""
    count = counted([(1000, 1)])
    cosine = curves.cosine(0, count.max_train_steps)
    result = exposure.exposure(count, [cosine(step) for step in range(count.max_train_steps)])
    assert abs(result["below_10pct"] * 1000 - (1 - math.acos(-0.8) / math.pi) * 1000) <= 1
    assert result["order"] == "every image once: the multipliers' own" and result["images"] == 1000
    floored = exposure.exposure(count, [0.5 + 0.5 * cosine(step) for step in range(count.max_train_steps)])
    assert floored["below_10pct"] == 0 and floored["min"] >= 0.5


@pytest.mark.parametrize("batch_size, epochs, processes, accumulation", [(1, 1, 1, 1), (3, 4, 1, 2), (2, 3, 2, 1)])
def test_the_images_sums_add_up_to_every_updates_multiplier_times_its_images(batch_size, epochs, processes, accumulation):
    count = counted([(7, 2), (5, 3)], batch_size, epochs, processes, accumulation)
    multipliers = [0.3 + 0.7 * (1 - step / count.max_train_steps) for step in range(count.max_train_steps)]
    sums = exposure.per_image(count, multipliers, seed=3)
    # the same placement, counted per update instead of per image
    import random

    rng = random.Random(3)
    per_update = processes * accumulation
    expected = 0.0
    for epoch in range(count.epochs):
        batches = [(0, batch) for batch in exposure._batches_of(count.datasets[0], rng)]
        rng.shuffle(batches)
        for position, (_, batch) in enumerate(batches):
            update = epoch * count.steps_per_epoch + min(position // per_update, count.steps_per_epoch - 1)
            if update < len(multipliers):
                expected += multipliers[update] * len(batch)
    assert sum(total for total, _ in sums.values()) == pytest.approx(expected, rel=1e-12)
    assert len(sums) == 12 and {seen for _, seen in sums.values()} <= {2 * count.epochs, 3 * count.epochs}


def test_the_preview_shows_each_schedules_exposure_and_json_keeps_it(tmp_path):
    from PIL import Image

    for folder, images in (("1_many", 12), ("4_few", 3)):
        (tmp_path / "img" / folder).mkdir(parents=True)
        for i in range(images):
            Image.new("RGB", (64, 64)).save(tmp_path / "img" / folder / f"{i}.png")
    argv = ["preview", f"--train_data_dir={tmp_path / 'img'}", "--resolution=64", "--caption_extension=.txt", "--max_train_epochs=2",
            "--lr_scheduler=cosine", "--compare=cosine_floor:min_value=0.5"]  # fmt: skip
    run = lambda extra: subprocess.run([sys.executable, "-m", "sdsched_plugin.cli", *argv, *extra], capture_output=True, text=True,  # noqa: E731
                                       env=host_env(PYTHONPATH=""), cwd=tmp_path, timeout=300)  # fmt: skip
    text, data = run([]), run(["--json"])
    assert text.returncode == 0 and data.returncode == 0, text.stderr + data.stderr
    assert "exposure: the mean LR multiplier each training image meets (one shuffled order (seed 0) of sd-scripts' kind)" in text.stdout
    assert "  cosine: 15 images, min " in text.stdout and "  cosine_floor:min_value=0.5: 15 images, min " in text.stdout
    stock, floored = (schedule["exposure"] for schedule in json.loads(data.stdout)["schedules"])
    assert floored["min"] >= 0.5 > stock["min"] and floored["below_50pct"] == 0 < stock["below_50pct"]
    assert [subset["repeats"] for subset in stock["subsets"]] == [1, 4]
