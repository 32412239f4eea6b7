"""``sdsched preview --from MODEL``: reading a model's schedule costs its header, not its size.

In one interleaved run, each sample a real child process (``common.spawn``):

- ``python -c pass``: the interpreter's start;
- ``preview, flags``: ``sdsched preview`` of the same schedule from its flags;
- ``--from 2 MB`` and ``--from 2 GB``: the same schedule read from the metadata of a safetensors
  file with a 2 MB and a 2 GB tensor (a sparse file: its size, not its disk blocks, is what a
  reader that loaded the tensors would pay for).

The targets are ratios of medians: ``--from 2 GB`` over ``--from 2 MB`` (the size does not count:
~1.0) and over ``preview, flags`` (the header's reading is nothing beside the preview itself);
and ``--from`` imports no torch (checked once with ``-X importtime``).

    python benchmarks/bench_from.py [--rounds N]
"""

from __future__ import annotations

import argparse
import json
import struct
import subprocess
import sys
import tempfile
from pathlib import Path

from common import interleave, ratio, spawn, summary

SCHEDULE = {"lr_scheduler": "cosine_with_restarts_floor", "lr_scheduler_min_value": 0.5, "lr_scheduler_num_cycles": 3,
            "lr_warmup_steps": 0.05, "max_train_steps": 10_000, "learning_rate": 1e-4}  # fmt: skip
CONSOLE_SCRIPT = "import sys; from sdsched_plugin.cli import main; sys.exit(main())"


def model_file(path: Path, tensor_bytes: int) -> Path:
    """A safetensors file whose metadata holds the schedule as training saves it, and one F32
    tensor of ``tensor_bytes`` (sparse: written as a hole)."""
    record = {"format": 1, "made_by": "sdsched-plugin bench", "num_processes": 1, "schedule": {}, "flags": SCHEDULE}
    header = {"__metadata__": {"sdsched_schedule": json.dumps(record), "ss_lr_scheduler": "cosine_with_restarts"},
              "w": {"dtype": "F32", "shape": [tensor_bytes // 4], "data_offsets": [0, tensor_bytes]}}  # fmt: skip
    text = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text)
        f.truncate(8 + len(text) + tensor_bytes)
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args(argv).rounds
    with tempfile.TemporaryDirectory() as folder:
        small, large = model_file(Path(folder) / "small.safetensors", 2 << 20), model_file(Path(folder) / "large.safetensors", 2 << 30)
        preview = [sys.executable, "-c", CONSOLE_SCRIPT, "preview", "--json"]
        commands = {
            "python -c pass": [sys.executable, "-c", "pass"],
            "preview, flags": [*preview, *(f"--{key}={value}" for key, value in SCHEDULE.items())],
            "--from 2 MB": [*preview, "--from", str(small)],
            "--from 2 GB": [*preview, "--from", str(large)],
        }
        samples = interleave({name: (lambda argv=argv: spawn(argv)["wall_ms"]) for name, argv in commands.items()}, rounds)
        timing = subprocess.run([sys.executable, "-X", "importtime", *commands["--from 2 GB"][1:]], capture_output=True, text=True)
    heavy = sorted({line.split("|")[-1].strip().split(".")[0] for line in timing.stderr.splitlines() if "|" in line} & {"torch", "diffusers", "numpy"})
    result = {
        "wall_ms": {name: summary(values) for name, values in samples.items()},
        "ratio --from 2 GB / --from 2 MB": ratio(samples["--from 2 GB"], samples["--from 2 MB"]),
        "ratio --from 2 GB / preview, flags": ratio(samples["--from 2 GB"], samples["preview, flags"]),
        "heavy modules imported by --from": heavy,
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
