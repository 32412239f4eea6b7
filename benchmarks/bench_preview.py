"""Item 4: ``sdsched preview`` from flags, against ``python -c pass`` and ``import torch``, in one run.

Each sample is one real child process, its wall time, and its CPU time and peak RSS from
``os.wait4`` for that one child. In one interleaved run:

- ``python -c pass``: the interpreter's start in the benchmark venv (plugin hook included);
- ``import torch``: the larger part of what every preview paid before it stopped importing torch
  (``import torch; import diffusers.optimization`` is left out: it doubles the run's length);
- ``import sdsched_plugin.cli``: the preview's own imports, without running it;
- ``sdsched preview ... --json`` (the console script's own code: ``from sdsched_plugin.cli import
  main``) for three schedules at 10k, 100k and 1M steps: a floored one
  (``cosine_with_restarts_floor``, a min value, 3 cycles), one of sd-scripts' own names
  (``cosine_with_min_lr`` with ``--lr_scheduler_min_lr_ratio``), and the first with ``--compare``
  of the second.

Each preview's wall time is given as a ratio of medians to ``python -c pass`` and to
``import torch``. The same ``main()`` is also timed inside this process (its modules already
imported), which is the work that grows with the step count, without the start-up.

Then each preview child is run once more under ``-X importtime``: the benchmark reports which
heavy modules (torch, diffusers, transformers, numpy) it imported, expected none.
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import time

from common import interleave, main_json, ratio, spawn, summary

SIZES = (10_000, 100_000, 1_000_000)
RUN = ["--lr_warmup_steps=0.05", "--steps_per_epoch=1000", "--learning_rate=1e-4", "--json"]
FLOORED = ["--lr_scheduler=cosine_with_restarts_floor", "--lr_scheduler_min_value=0.5", "--lr_scheduler_num_cycles=3"]
SD_SCRIPTS = ["--lr_scheduler=cosine_with_min_lr", "--lr_scheduler_min_lr_ratio=0.1"]
SCHEDULES = {
    "floored": FLOORED,
    "sd-scripts' own": SD_SCRIPTS,
    "floored --compare own": [*FLOORED, "--lr_scheduler_min_lr_ratio=0.1", "--compare=cosine_with_min_lr"],
}
CONSOLE_SCRIPT = "import sys; from sdsched_plugin.cli import main; sys.exit(main())"
BASELINES = {
    "python -c pass": "pass",
    "import torch": "import torch",
    "import sdsched_plugin.cli": "import sdsched_plugin.cli",
}
HEAVY = ("torch", "diffusers", "transformers", "numpy")


def flags(schedule: str, steps: int) -> list[str]:
    return [*SCHEDULES[schedule], *RUN, f"--max_train_steps={steps}"]


def command(schedule: str, steps: int, python_flags: tuple = ()) -> list[str]:
    return [sys.executable, *python_flags, "-c", CONSOLE_SCRIPT, "preview", *flags(schedule, steps)]


def name_of(schedule: str, steps: int) -> str:
    return f"{schedule}, {steps} steps"


def in_process_s(schedule: str, steps: int):
    def run() -> float:
        from sdsched_plugin.cli import main

        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            main(["preview", *flags(schedule, steps)])
        return time.perf_counter() - start

    return run


def heavy_imports(schedule: str, steps: int) -> dict:
    """The heavy top-level packages ``-X importtime`` shows the preview child importing, and
    how many modules it imported in all."""
    out = subprocess.run(command(schedule, steps, ("-X", "importtime")), capture_output=True, text=True, check=True)
    modules = [line.rsplit("|", 1)[1].strip() for line in out.stderr.splitlines() if line.startswith("import time:") and "self [us]" not in line]
    return {"heavy": sorted({m.split(".")[0] for m in modules} & set(HEAVY)), "modules": len(modules)}


def run(rounds: int, sizes: tuple = SIZES) -> dict:
    variants = {name: [sys.executable, "-c", code] for name, code in BASELINES.items()}
    variants.update({name_of(schedule, steps): command(schedule, steps) for schedule in SCHEDULES for steps in sizes})
    samples = interleave({name: (lambda argv=argv: spawn(argv)) for name, argv in variants.items()}, rounds)
    wall = {name: [s["wall_ms"] / 1e3 for s in runs] for name, runs in samples.items()}
    results = {
        name: {
            "wall_s": summary(wall[name]),
            "cpu_s": summary([s["cpu_ms"] / 1e3 for s in runs]),
            "peak_rss_mib": summary([s["peak_rss_mib"] for s in runs]),
            "vs_pass": ratio(wall[name], wall["python -c pass"]),
            "vs_torch": ratio(wall[name], wall["import torch"]),
        }
        for name, runs in samples.items()
    }
    inner = {name_of(schedule, steps): in_process_s(schedule, steps) for schedule in SCHEDULES for steps in sizes}
    for name, seconds in interleave(inner, rounds).items():
        results[name]["in_process_s"] = summary(seconds)
    imports = {schedule: heavy_imports(schedule, sizes[0]) for schedule in SCHEDULES}
    return {
        "command": "sdsched preview SCHEDULE " + " ".join(RUN) + " --max_train_steps=N",
        "schedules": {schedule: " ".join(argv) for schedule, argv in SCHEDULES.items()},
        "sizes": list(sizes),
        "runs": results,
        "imports": imports,
    }


if __name__ == "__main__":
    main_json(run)
