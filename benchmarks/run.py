"""Run the benchmarks: ``python benchmarks/run.py [--quick] [--ref REF | --source DIR] [--json FILE]``.

Builds the wheel from this checkout (or from its git ``REF``, or from ``DIR``), installs it into a fresh venv
(``wheel_venv``), and measures, each against a baseline taken in the same run, interleaved:

1. ``bench_startup``: ``python -c pass`` with and without the plugin, and with its off switch;
2. ``bench_patch``: what the post-import hook adds to importing sd-scripts' ``train_util``,
   and building a floored scheduler against the stock one;
3. ``bench_steps``: ``scheduler.step()`` + ``get_last_lr()`` of each floored schedule against
   the stock one, and a small real training step for scale;
4. ``bench_preview``: ``sdsched preview`` from flags at 10k, 100k and 1M steps, wall time and peak
   memory, as ratios to ``python -c pass`` and to ``import torch``, and the heavy modules it imports.

Items 2-4 run inside the benchmark venv, so they use the installed wheel (compiled byte code),
not the checkout. Prints a Markdown report (``report.py``); nothing here asserts a time.
Run it with the Python of a venv that has the plugin's dependencies (torch, diffusers,
transformers, toml, pip, hatchling): those are lent to the benchmark venv.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import bench_startup
import report
import wheel_venv
from common import load_average

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

FULL = {
    "startup": {"rounds": 500},
    "patch": {"child_rounds": 20, "build_rounds": 30},
    "steps": {"total": 10_000, "rounds": 30},
    "preview": {"rounds": 5},
}
QUICK = {
    "startup": {"rounds": 20},
    "patch": {"child_rounds": 3, "build_rounds": 5},
    "steps": {"total": 2_000, "rounds": 5},
    "preview": {"rounds": 1},
}


def export(ref: str, work: Path) -> Path:
    """The files of git ``ref`` of this checkout, in ``work/src``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", "--format=tar", ref], capture_output=True, check=True)
    source = work / "src"
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(source, filter="data")
    return source


def describe_source(ref: str | None) -> str:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(REPO), *args], capture_output=True, text=True).stdout.strip()

    commit = git("rev-parse", "--short", ref or "HEAD")
    if ref:
        return f"git {ref} ({commit})"
    dirty = git("status", "--porcelain", "--", "sdsched_plugin", "_sdsched_plugin_boot.py", "sdsched_plugin.pth", "pyproject.toml")
    return f"working tree at {commit}" + (" with uncommitted changes to the package" if dirty else "")


def in_venv(venv: wheel_venv.Venv, script: str, kwargs: dict) -> dict:
    """Run ``benchmarks/<script>`` with the benchmark venv's Python; its JSON result. It runs in the
    venv's ``bin``, not here: a ``python -c`` child puts its working directory first on ``sys.path``,
    and here that would import the checkout's ``sdsched_plugin`` instead of the wheel's."""
    out = subprocess.run(
        [str(venv.python), str(HERE / script), json.dumps(kwargs)], stdout=subprocess.PIPE, text=True, check=True, cwd=venv.python.parent
    )
    return json.loads(out.stdout)


VERSIONS = (
    "import json, os, platform, sys, torch, diffusers, transformers, sdsched_plugin; print(json.dumps({"
    "'python': platform.python_version(), 'torch': torch.__version__, 'diffusers': diffusers.__version__,"
    "'transformers': transformers.__version__, 'sdsched_plugin': sdsched_plugin.__version__,"
    "'plugin_file': sdsched_plugin.__file__, 'cores': os.cpu_count(), 'torch_threads': torch.get_num_threads(),"
    "'machine': platform.machine(), 'system': platform.platform()}))"
)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few repeats, small sizes: a smoke run of a minute or two")
    parser.add_argument("--ref", default=None, help="benchmark this git ref of this checkout instead of its working tree")
    parser.add_argument("--source", default=None, help="benchmark the package in this directory (a candidate change)")
    parser.add_argument("--items", default="startup,patch,steps,preview", help="comma-separated subset")
    parser.add_argument("--json", default=None, metavar="FILE", help="also write the raw numbers here")
    args = parser.parse_args(argv)
    sizes, items = (QUICK if args.quick else FULL), args.items.split(",")
    command = " ".join(["python benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])])
    results = {"meta": {"date": time.strftime("%Y-%m-%d %H:%M %Z"), "command": command, "source": args.source or describe_source(args.ref)}}
    with tempfile.TemporaryDirectory(prefix="sdsched-bench-") as tmp:
        work = Path(tmp)
        source = export(args.ref, work) if args.ref else Path(args.source or REPO)
        venv = wheel_venv.prepare(source, work)
        venv.packages.only("wheel", "deps")
        versions = subprocess.run([str(venv.python), "-c", VERSIONS], capture_output=True, text=True, check=True, cwd=venv.python.parent)
        results["meta"].update(json.loads(versions.stdout), cpu=cpu_model(), wheel=venv.wheel.name, load={})
        for item in items:
            results["meta"]["load"][item] = [load_average()]
            print(f"[{time.strftime('%H:%M:%S')}] {item} ... (load {load_average()})", file=sys.stderr, flush=True)
            if item == "startup":
                results[item] = bench_startup.run(venv, **sizes[item])
                venv.packages.only("wheel", "deps")
            else:
                results[item] = in_venv(venv, f"bench_{item}.py", sizes[item])
            results["meta"]["load"][item].append(load_average())
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    print(report.markdown(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
