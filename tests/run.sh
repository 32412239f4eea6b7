#!/usr/bin/env bash
# The test command (README, .ci/run): makes .venv once, installs the package with its test
# extras into it, and runs the suite. Needs no GPU; the network only for the first install.
# Extra arguments go to pytest. The tests run on every core (pytest-xdist: most of their time is
# subprocesses starting Python and torch); TEST_WORKERS=0 runs them in one process.
# SD_SCRIPTS_DIR=/path/to/sd-scripts runs the sd-scripts tests against a real checkout;
# VENV=/path/to/its/venv runs in a venv that can import it.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
if [ ! -x "$venv/bin/python" ]; then
    "${PYTHON:-python3}" -m venv "$venv"
fi
py="$venv/bin/python"
# torch first, pinned only when absent: an existing torch is never replaced (TORCH_SPEC overrides).
if ! "$py" -c "import torch" 2>/dev/null; then
    "$py" -m pip install -q "${TORCH_SPEC:-torch==2.13.0}"
fi
"$py" -m pip install -q -e ".[test]"
exec "$py" -m pytest -n "${TEST_WORKERS:-auto}" "$@"
