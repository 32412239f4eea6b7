"""Item 1: what the ``.pth`` startup hook costs every Python process of the venv.

``python -c pass`` in the benchmark venv (``wheel_venv``), interleaved, in these states:

- ``without``: the venv before the install (the baseline);
- ``with``: the wheel installed, the hook active;
- ``with, off``: the wheel installed and ``SDSCHED_PLUGIN_DISABLE=1``;
- ``floor .pth`` (for scale): no wheel, but a ``.pth`` importing an empty package: what any hook
  that imports code costs at least;
- ``setuptools .pth`` (for scale): no wheel, but setuptools' ``distutils-precedence.pth``.

Both the wall time and the CPU time (user + system) of the child are kept: the CPU time hardly
moves with other load on the machine. ``-X importtime`` then lists the modules the hook imports
(checking that no heavy one is among them) and gives their own import times.
"""

from __future__ import annotations

import os
import statistics
import subprocess

from common import interleave, ratio, spawn, summary
from wheel_venv import Venv

OFF = {"SDSCHED_PLUGIN_DISABLE": "1"}
FORBIDDEN = ("torch", "diffusers", "importlib.metadata", "importlib.abc", "importlib.util", "logging")


def timed_start(venv: Venv, wanted: tuple, env: dict):
    """A variant for ``interleave``: set up site-packages, then time ``python -c pass``."""

    def run() -> dict:
        venv.packages.only(*wanted)
        return spawn([str(venv.python), "-c", "pass"], env)

    return run


def compare(wall: list, base_wall: list, cpu: list, base_cpu: list) -> dict:
    return {
        "wall": summary(wall),
        "cpu": summary(cpu),
        "wall_ratio": ratio(wall, base_wall),
        "cpu_ratio": ratio(cpu, base_cpu),
        "wall_added_ms": statistics.median(wall) - statistics.median(base_wall),
        "cpu_added_ms": statistics.median(cpu) - statistics.median(base_cpu),
    }


def importtime(venv: Venv, env: dict) -> dict[str, int]:
    """``{module: its own import time in µs}`` from ``-X importtime``."""
    command = [str(venv.python), "-X", "importtime", "-c", "pass"]
    out = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
    modules = {}
    for line in out.stderr.splitlines():
        if line.startswith("import time:") and "self [us]" not in line:
            self_us, _, name = (part.strip() for part in line[len("import time:") :].split("|"))
            modules[name] = int(self_us)
    return modules


def hook_imports(venv: Venv, on_env: dict, rounds: int) -> dict:
    """The modules the hook adds to ``-X importtime`` (and those the off switch adds: none
    expected), the heavy ones among them, and the sum of their own import times."""
    venv.packages.only()
    baseline = set(importtime(venv, on_env))
    venv.packages.only("wheel")
    off = set(importtime(venv, {**on_env, **OFF}))
    totals, on = [], {}
    for _ in range(rounds):
        on = importtime(venv, on_env)
        totals.append(sum(us for name, us in on.items() if name not in baseline) / 1e3)
    return {
        "added_modules": sorted(set(on) - baseline),
        "forbidden_imported": sorted(set(FORBIDDEN) & set(on)),
        "off_switch_adds": sorted(off - baseline),
        "self_ms": summary(totals),
    }


def run(venv: Venv, rounds: int) -> dict:
    on = {k: v for k, v in os.environ.items() if k not in ("SDSCHED_PLUGIN_DISABLE", "PYTHONPROFILEIMPORTTIME")}
    variants = {
        "without": ((), on),
        "with": (("wheel",), on),
        "with, off": (("wheel",), {**on, **OFF}),
        "floor .pth": (("floor",), on),
    }
    if "setuptools" in venv.packages.sets:
        variants["setuptools .pth"] = (("setuptools",), on)
    runs = interleave({name: timed_start(venv, wanted, env) for name, (wanted, env) in variants.items()}, rounds, warmup=3)
    wall = {name: [run["wall_ms"] for run in samples] for name, samples in runs.items()}
    cpu = {name: [run["cpu_ms"] for run in samples] for name, samples in runs.items()}
    results = {name: compare(wall[name], wall["without"], cpu[name], cpu["without"]) for name in variants}
    imports = hook_imports(venv, on, max(5, rounds // 10))
    return {"installed": venv.packages.sets["wheel"], "variants": results, "importtime": imports}
