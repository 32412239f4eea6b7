"""Keeps experiments/floor_vs_cosine.py working: its quick mode runs end to end and writes a
well-formed table and readable figures. Nothing here asserts which schedule wins."""

import importlib.util
import json
import math
import subprocess
import sys

import pytest

from conftest import REPO

SCRIPT = REPO / "experiments" / "floor_vs_cosine.py"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def load_script():
    spec = importlib.util.spec_from_file_location("floor_vs_cosine", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def experiment():
    return load_script()


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("quick")
    process = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--out", str(out)], capture_output=True, text=True, timeout=300, cwd=REPO
    )
    assert process.returncode == 0, process.stdout[-3000:] + process.stderr[-3000:]
    return out, process


def finite_numbers(value):
    if isinstance(value, dict):
        for item in value.values():
            yield from finite_numbers(item)
    elif isinstance(value, list):
        for item in value:
            yield from finite_numbers(item)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        yield value


def read(out, name):
    return json.loads((out / f"{name}.json").read_text())


def test_quick_run_writes_a_row_per_optimizer_and_schedule(quick_run, experiment):
    out, _ = quick_run
    result = read(out, experiment.RESULTS_NAME)
    optimizers = result["optimizers"]
    schedules = [s.key for s in experiment.SCHEDULES]
    assert [o.partition(" ")[0] for o in optimizers] == ["AdamW"] * (len(optimizers) - 1) + ["Prodigy"]
    assert [(row["optimizer"], row["schedule"]) for row in result["rows"]] == [(o, s) for o in optimizers for s in schedules]
    numbers = list(finite_numbers(result["rows"])) + list(finite_numbers(result["lr_check"]))
    assert numbers and all(math.isfinite(n) for n in numbers)
    for row in result["rows"]:
        assert row["heldout_final"] > 0 and row["heldout_best"] <= row["heldout_final"]
        assert ("d_final" in row) == row["optimizer"].startswith("Prodigy")
        assert ("vs_stock_final" in row) == ("floor" in row["schedule"])
    assert len(result["lr_check"]) == len(result["config"]["adamw_lrs"]) + len(result["config"]["sweep_lrs"])
    assert result["mode"] == "quick" and result["seconds"] > 0


def test_quick_run_keeps_every_step(quick_run, experiment):
    out, _ = quick_run
    raw = read(out, experiment.RUNS_NAME)
    steps = raw["config"]["finetune_steps"]
    seeds = [str(s) for s in raw["config"]["seeds"]]
    for optim, by_schedule in raw["runs"].items():
        for schedule, by_seed in by_schedule.items():
            assert sorted(by_seed) == sorted(seeds)
            for record in by_seed.values():
                assert len(record["loss"]) == steps
                assert len(record["d_lr"]) == steps if optim.startswith("Prodigy") else "d_lr" not in record
                assert record["eval_steps"][0] == 0 and record["eval_steps"][-1] == steps
                assert all(math.isfinite(n) for n in finite_numbers(record))


def test_quick_run_writes_the_markdown_table(quick_run, experiment):
    out, process = quick_run
    table = (out / f"{experiment.RESULTS_NAME}.md").read_text()
    result = read(out, experiment.RESULTS_NAME)
    body = [line for line in table.splitlines() if line.startswith("| ") and "---" not in line]
    rows = [line for line in body if not line.startswith("| optimizer") and not line.startswith("| AdamW lr |")]
    assert len(rows) == len(result["rows"]) + len(result["lr_check"])
    for row in result["rows"]:
        assert any(line.startswith(f"| {row['optimizer']} | {row['label']} |") for line in rows)
    assert "nan" not in table.lower() and "inf" not in table.lower()
    assert "python experiments/floor_vs_cosine.py --quick" in table
    assert table.splitlines()[-1] in process.stdout


def test_quick_run_writes_valid_figures(quick_run, experiment):
    out, _ = quick_run
    result = read(out, experiment.RESULTS_NAME)
    assert sorted(result["figures"]) == sorted(f"img/floor-vs-cosine-{name}.png" for name in experiment.FIGURES)
    import matplotlib.image

    for figure in result["figures"]:
        path = out / figure
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        pixels = matplotlib.image.imread(path)
        assert pixels.shape[0] > 200 and pixels.shape[1] > 400
        assert pixels.std() > 0.01  # something was drawn


def test_replot_redraws_the_same_table(quick_run, experiment, tmp_path):
    out, _ = quick_run
    copy = tmp_path / "copy"
    copy.mkdir()
    (copy / f"{experiment.RUNS_NAME}.json").write_bytes((out / f"{experiment.RUNS_NAME}.json").read_bytes())
    assert experiment.main(["--replot", "--out", str(copy)]) == 0
    assert (copy / f"{experiment.RESULTS_NAME}.md").read_text() == (out / f"{experiment.RESULTS_NAME}.md").read_text()
    assert len(list((copy / "img").glob("*.png"))) == len(experiment.FIGURES)


def test_schedules_are_the_ones_training_builds(quick_run, experiment):
    """The multipliers recorded per step: stock names give the stock curve of sd-scripts'
    dispatch (transformers' functions), and each floored one is M + (1 - M) * that curve."""
    out, _ = quick_run
    raw = read(out, experiment.RUNS_NAME)
    steps = raw["config"]["finetune_steps"]
    transformers_optimization = pytest.importorskip("transformers.optimization")
    import torch

    for schedule in experiment.SCHEDULES:
        recorded = raw["multipliers"][schedule.key]
        assert len(recorded) == steps
        if schedule.lr_scheduler == "constant":
            assert recorded == [1.0] * steps
            continue
        scratch = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        stock = transformers_optimization.get_cosine_with_hard_restarts_schedule_with_warmup(
            scratch, num_warmup_steps=0, num_training_steps=steps, num_cycles=schedule.num_cycles
        ).lr_lambdas[0]
        floor = schedule.min_value or 0.0
        expected = [floor + (1 - floor) * stock(step) for step in range(steps)]
        assert recorded == pytest.approx(expected, abs=1e-5), schedule.key


def test_stock_builder_matches_sd_scripts_dispatch(experiment):
    """sd-scripts takes stock schedules from transformers; the script from diffusers. Same curves."""
    transformers_optimization = pytest.importorskip("transformers.optimization")
    import torch

    for schedule in experiment.SCHEDULES:
        if schedule.min_value is not None:
            continue
        for steps, warmup in ((400, 0), (37, 0), (100, 0.1), (100, 7)):
            if schedule.lr_scheduler == "constant" and warmup:
                continue
            mine = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
            built = experiment.build_scheduler(experiment.sd_scripts_args(schedule, steps, "AdamW", warmup), mine)
            theirs = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
            kind = transformers_optimization.SchedulerType(schedule.lr_scheduler)
            function = transformers_optimization.TYPE_TO_SCHEDULER_FUNCTION[kind]
            if kind == transformers_optimization.SchedulerType.CONSTANT:
                reference = function(theirs)
            else:
                count = int(warmup * steps) if isinstance(warmup, float) else warmup
                reference = function(theirs, num_warmup_steps=count, num_training_steps=steps, num_cycles=schedule.num_cycles)
            for step in range(steps + 2):
                assert built.lr_lambdas[0](step) == pytest.approx(reference.lr_lambdas[0](step), abs=1e-12)


def test_floored_schedules_come_from_the_plugin(experiment):
    from sdsched_plugin.schedulers import CosineWithRestartsFloor

    import torch

    for schedule in experiment.SCHEDULES:
        optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
        built = experiment.build_scheduler(experiment.sd_scripts_args(schedule, 100, "Prodigy"), optimizer)
        assert isinstance(built, CosineWithRestartsFloor) == (schedule.min_value is not None)
        if schedule.min_value is not None:
            assert built.sdsched["min_value"] == schedule.min_value
            assert built.sdsched["num_cycles"] == schedule.num_cycles
            assert built.sdsched["num_training_steps"] == 100
