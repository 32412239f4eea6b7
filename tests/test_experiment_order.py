"""Keeps experiments/image_order.py (experiment v2: where an image falls in the run) working: its
quick mode runs end to end, places each class's images in its block of the one-epoch order, and
reports every (schedule, position) cell over seeds x class orders. Nothing here asserts which
schedule wins."""

import json
import math
import subprocess
import sys

import pytest

from conftest import REPO

SCRIPT = REPO / "experiments" / "image_order.py"


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("order")
    process = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out)], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    return json.loads((out / "image-order-results.json").read_text()), out


def cosine_block_means(updates: int, blocks: int) -> list[float]:
    """The mean of stock cosine's multiplier 0.5 (1 + cos(pi k / N)) over each block's updates."""
    size = updates // blocks
    return [sum(0.5 * (1 + math.cos(math.pi * k / updates)) for k in range(b * size, (b + 1) * size)) / size for b in range(blocks)]


def test_each_block_meets_the_schedules_share_of_the_run(quick):
    """Quick: 4 images a class, batch 2: 8 updates, 2 a block. Stock cosine's block means are the
    analytic ones; cosine_floor 0.5's are 0.5 + 0.5 x them; constant's are 1."""
    result, _ = quick
    cfg = result["config"]
    updates = len(cfg["new_classes"]) * cfg["per_class"] // cfg["batch"]
    expected = cosine_block_means(updates, len(cfg["new_classes"]))
    for optimizer, rows in result["summary"].items():
        cosine = [rows["cosine"]["mean_multiplier"][str(p)] for p in range(1, 5)]
        floored = [rows["cosine_floor0.5"]["mean_multiplier"][str(p)] for p in range(1, 5)]
        assert cosine == pytest.approx(expected, abs=1e-6), optimizer
        assert floored == pytest.approx([0.5 + 0.5 * m for m in expected], abs=1e-6), optimizer
        assert [rows["constant"]["mean_multiplier"][str(p)] for p in range(1, 5)] == [1.0] * 4


def test_every_class_is_at_every_position_once_per_seed(quick):
    result, _ = quick
    cfg = result["config"]
    cells = len(cfg["seeds"]) * len(cfg["new_classes"])  # seeds x class orders
    schedules = [s["key"] for s in result["schedules"]]
    for rows in result["summary"].values():
        assert list(rows) == schedules
        assert all(row["n"] == {str(p): cells for p in range(1, 5)} for row in rows.values())
    for run in result["runs"]:
        positions = {c: v["position"] for c, v in run["classes"].items()}
        assert positions == {str(c): p + 1 for p, c in enumerate(run["order"])}
        assert len(run["multipliers"]) == 8
    orders = {tuple(run["order"]) for run in result["runs"]}
    assert all(sorted(order[p] for order in orders) == [6, 7, 8, 9] for p in range(4))  # a Latin square


def test_the_improvement_is_what_the_losses_say(quick):
    result, out = quick
    for run in result["runs"]:
        for c in run["classes"].values():
            assert c["improvement"] == pytest.approx((c["before"] - c["after"]) / c["before"], abs=1e-5)
    assert {p.name for p in (out / "img").iterdir()} == {"image-order-position.png", "image-order-lr.png"}
    assert "| cosine (to 0) |" in (out / "image-order-table.md").read_text()
