"""Item 4: ``sdsched preview`` wall time and peak memory as the run grows (10k, 100k, 1M steps).

Each sample is one real ``sdsched preview ... --json`` child (the console script's own code:
``from sdsched_plugin.cli import main``): its wall time, and its CPU time and peak RSS from
``os.wait4`` for that one child. ``import torch`` plus ``diffusers.optimization`` alone is timed the same way,
so what grows with the step count shows apart from the fixed cost of the imports; and the same
``main()`` is timed again inside this process, where torch is already imported, which is the
growth alone without the noise of a torch import.
"""

from __future__ import annotations

import contextlib
import io
import sys
import time

from common import interleave, main_json, spawn, summary

SIZES = (10_000, 100_000, 1_000_000)
SCHEDULE = [
    "--lr_scheduler=cosine_with_restarts_floor",
    "--lr_scheduler_min_value=0.5",
    "--lr_scheduler_num_cycles=3",
    "--lr_warmup_steps=0.05",
    "--steps_per_epoch=1000",
    "--learning_rate=1e-4",
    "--json",
]
CONSOLE_SCRIPT = "import sys; from sdsched_plugin.cli import main; sys.exit(main())"
IMPORTS_ONLY = "import torch; import diffusers.optimization"


def command(steps: int) -> list[str]:
    return [sys.executable, "-c", CONSOLE_SCRIPT, "preview", *SCHEDULE, f"--max_train_steps={steps}"]


def in_process_s(steps: int):
    def run() -> float:
        from sdsched_plugin.cli import main

        start = time.perf_counter()
        with contextlib.redirect_stdout(io.StringIO()):
            main(["preview", *SCHEDULE, f"--max_train_steps={steps}"])
        return time.perf_counter() - start

    return run


def run(rounds: int, sizes: tuple = SIZES) -> dict:
    variants = {"imports only": [sys.executable, "-c", IMPORTS_ONLY]}
    variants.update({f"{steps} steps": command(steps) for steps in sizes})
    samples = interleave({name: (lambda argv=argv: spawn(argv)) for name, argv in variants.items()}, rounds)
    results = {
        name: {
            "wall_s": summary([s["wall_ms"] / 1e3 for s in runs]),
            "cpu_s": summary([s["cpu_ms"] / 1e3 for s in runs]),
            "peak_rss_mib": summary([s["peak_rss_mib"] for s in runs]),
        }
        for name, runs in samples.items()
    }
    in_process = interleave({f"{steps} steps": in_process_s(steps) for steps in sizes}, rounds)
    for name, seconds in in_process.items():
        results[name]["in_process_s"] = summary(seconds)
    return {"command": "sdsched preview " + " ".join(SCHEDULE) + " --max_train_steps=N", "runs": results}


if __name__ == "__main__":
    main_json(run)
