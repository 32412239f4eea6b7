"""What every benchmark here shares: interleaved repeats, robust summaries, timed child processes.

- ``interleave``: run each variant once per round, in a fresh random order every round, so that
  load from other work on the machine falls on the baseline and the candidate alike;
- ``summary`` / ``ratio``: the median with the quartiles and the extremes, and the ratio of
  two medians (the number each target is stated in);
- ``floored_vs_stock``: both of those for each floored schedule against its stock one;
- ``spawn``: run a command as a child and return its wall time, CPU time and peak RSS, read
  from ``os.wait4`` for that one child (``getrusage(RUSAGE_CHILDREN)`` would mix all children).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
import warnings
from typing import Callable


def interleave(variants: dict[str, Callable[[], object]], rounds: int, warmup: int = 1) -> dict[str, list]:
    """``{name: [what the variant returned, once per round]}``; the first ``warmup`` rounds are
    run and dropped."""
    samples: dict[str, list] = {name: [] for name in variants}
    order = list(variants)
    for round_index in range(warmup + rounds):
        random.shuffle(order)
        for name in order:
            value = variants[name]()
            if round_index >= warmup:
                samples[name].append(value)
    return samples


def floored_vs_stock(pairs: dict, measure: Callable, rounds: int, unit: str) -> dict:
    """``pairs`` is ``{label: (floored factory, stock factory)}``; ``measure(factory)`` gives the
    variant to interleave. Returns per label both summaries (keys ``floored_<unit>``,
    ``stock_<unit>``) and the ratio of their medians."""
    variants = {}
    for label, (floored, stock) in pairs.items():
        variants[f"{label} | floored"] = measure(floored)
        variants[f"{label} | stock"] = measure(stock)
    with warnings.catch_warnings():  # diffusers' deprecation chatter, once per build
        warnings.simplefilter("ignore")
        samples = interleave(variants, rounds)
    results = {}
    for label in pairs:
        floored, stock = samples[f"{label} | floored"], samples[f"{label} | stock"]
        results[label] = {f"floored_{unit}": summary(floored), f"stock_{unit}": summary(stock), "ratio": ratio(floored, stock)}
    return results


def summary(samples: list[float]) -> dict:
    ordered = sorted(samples)
    q1, _, q3 = statistics.quantiles(ordered, n=4) if len(ordered) > 1 else ordered * 3
    return {"n": len(ordered), "median": statistics.median(ordered), "q1": q1, "q3": q3, "min": ordered[0], "max": ordered[-1]}


def ratio(candidate: list[float], baseline: list[float]) -> float:
    return statistics.median(candidate) / statistics.median(baseline)


def spawn(argv: list[str], env: dict | None = None) -> dict:
    """Run ``argv`` (an absolute path first) with stdout to /dev/null; wall and CPU time in ms,
    peak resident memory in MiB. A failing command raises, with its exit code."""
    devnull = [(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)]
    start = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, os.environ if env is None else env, file_actions=devnull)
    _, status, usage = os.wait4(pid, 0)
    wall_ms = (time.perf_counter_ns() - start) / 1e6
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise RuntimeError(f"{' '.join(argv)} exited with {code}")
    return {
        "wall_ms": wall_ms,
        "cpu_ms": (usage.ru_utime + usage.ru_stime) * 1e3,
        "peak_rss_mib": usage.ru_maxrss / 1024,  # Linux reports KiB
    }


def load_average() -> str:
    return "/".join(f"{value:.2f}" for value in os.getloadavg())


def main_json(run: Callable[..., dict]) -> None:
    """``python bench_X.py '{"name": value}'`` prints ``run(name=value)`` as JSON: how ``run.py``
    runs a benchmark inside the benchmark venv."""
    print(json.dumps(run(**json.loads(sys.argv[1]))))
