"""Item 2: what patching sd-scripts costs, once per training run.

- The hook: the time the post-import hook adds to importing ``library.train_util`` (the
  stand-in in ``tests/standin``). Each sample is a fresh child that first imports what the
  stand-in imports (torch, transformers, diffusers, toml: seconds, and the same either way),
  then times ``import library.train_util``. Two kinds of child, interleaved:

  * ``hooked``: the plugin on, so the import goes through its finder and is patched;
  * ``stock``: ``SDSCHED_PLUGIN_DISABLE=1``. After the timed stock import, this child also
    times ``_sdsched_plugin_boot.run_hook`` on the imported module directly: importing our
    modules, checking that the module is sd-scripts', wrapping its three functions.

  The difference of the import medians is the end-to-end cost; ``run_hook`` is the same cost
  measured without the noise of the module body.
- Building the scheduler: each floored class against the stock diffusers function of the same
  base name (``cases.pairs``), in this process, interleaved.

``python bench_patch.py child`` is the child; ``run.py`` runs this file in the benchmark venv,
whose ``sdsched_plugin`` is the installed wheel.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import cases
from common import floored_vs_stock, interleave, main_json, ratio, summary

REPO = Path(__file__).resolve().parent.parent
STANDIN = REPO / "tests" / "standin"
OFF = {"SDSCHED_PLUGIN_DISABLE": "1"}


def child() -> dict:
    sys.path.insert(0, str(STANDIN))
    import diffusers.optimization  # noqa: F401  what the stand-in imports, loaded before the clock starts
    import toml  # noqa: F401
    import torch  # noqa: F401
    import transformers.optimization  # noqa: F401

    start = time.perf_counter_ns()
    import library.train_util as train_util

    result = {"import_ms": (time.perf_counter_ns() - start) / 1e6}
    if os.environ.get("SDSCHED_PLUGIN_DISABLE") == "1":
        result.update(time_run_hook(train_util))
    elif not patched(train_util):
        raise RuntimeError("the startup hook did not patch the stand-in")
    return result


def patched(train_util) -> bool:
    from sdsched_plugin.hosts import sd_scripts

    return sd_scripts.is_installed(train_util)


def time_run_hook(train_util) -> dict:
    """``run_hook`` on the already imported stock module. The boot module is imported with the
    host module hidden and its finder removed, so nothing is patched before the clock starts."""
    del sys.modules["library.train_util"]
    import _sdsched_plugin_boot as _boot

    _boot.remove_finder()
    sys.modules["library.train_util"] = train_util
    before = set(sys.modules)
    start = time.perf_counter_ns()
    _boot.run_hook("library.train_util", train_util)
    elapsed = (time.perf_counter_ns() - start) / 1e6
    if not patched(train_util):
        raise RuntimeError("run_hook did not patch the stand-in")
    return {"run_hook_ms": elapsed, "imported": sorted(set(sys.modules) - before)}


def run_child(env: dict) -> dict:
    out = subprocess.run([sys.executable, __file__, "child"], env=env, capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def hook_cost(rounds: int) -> dict:
    on = {k: v for k, v in os.environ.items() if k != "SDSCHED_PLUGIN_DISABLE"}
    samples = interleave({"hooked": lambda: run_child(on), "stock": lambda: run_child({**on, **OFF})}, rounds)
    hooked = [s["import_ms"] for s in samples["hooked"]]
    stock = [s["import_ms"] for s in samples["stock"]]
    return {
        "import_hooked_ms": summary(hooked),
        "import_stock_ms": summary(stock),
        "import_added_ms": summary(hooked)["median"] - summary(stock)["median"],
        "import_ratio": ratio(hooked, stock),
        "run_hook_ms": summary([s["run_hook_ms"] for s in samples["stock"]]),
        "run_hook_imports": samples["stock"][-1]["imported"],
    }


def build_us(factory, builds: int):
    def run() -> float:
        optimizer = cases.optimizer()
        start = time.perf_counter_ns()
        for _ in range(builds):
            factory(optimizer)
        return (time.perf_counter_ns() - start) / builds / 1e3

    return run


def build_cost(rounds: int, builds: int = 20, total: int = 10_000) -> dict:
    return floored_vs_stock(cases.pairs(total), lambda factory: build_us(factory, builds), rounds, "us")


def run(child_rounds: int, build_rounds: int) -> dict:
    return {"hook": hook_cost(child_rounds), "build": build_cost(build_rounds), "build_setup": cases.describe(10_000)}


if __name__ == "__main__":
    if sys.argv[1:] == ["child"]:
        print(json.dumps(child()))
    else:
        main_json(run)
