"""Resume (--save_state / --resume through accelerate) and several processes (real
``accelerate launch``), with the tiny training script in new processes each time."""

import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import DRIVER, Run, host_env, marked_processes, run_driver
from sdsched_plugin.schedule.cycles import PLAIN as PLAIN_RESTARTS

LR = ["--learning_rate", "1e-3"]
STEPS = 24
# every floored name; warmup 4 steps; restarts (2 cycles over 20 decaying steps) at step 14
NAMES = {
    "linear_floor": [],
    "cosine_floor": [],
    "cosine_with_restarts_floor": ["--lr_scheduler_num_cycles", "2"],
    "polynomial_floor": ["--lr_scheduler_power", "2"],
    "rex_floor": ["--lr_scheduler_num_cycles", "2"],
}
# the restart controls too: decay, growing cycles (restart at 12), a ramp at the restart
RESTART_CONTROLS = ["--lr_scheduler_num_cycles", "2", "--lr_scheduler_cycle_decay", "0.7", "--lr_scheduler_cycle_mul", "1.5",
                    "--lr_scheduler_restart_warmup_steps", "3"]  # fmt: skip
CASES = {**{name: (name, extra) for name, extra in NAMES.items()}, "restart_controls": ("cosine_with_restarts_floor", RESTART_CONTROLS)}
SAVE_AT = [2, 12]  # inside the warmup; after it, before the restart at 14


def schedule(case, min_value="0.5", steps=STEPS):
    name, extra = CASES[case]
    return ["--lr_scheduler", name, "--lr_scheduler_min_value", min_value, *extra, "--max_train_steps", str(steps), "--lr_warmup_steps", "4", *LR]


def driver(argv, **kwargs):
    process, traces = run_driver(argv, **kwargs)
    assert process.returncode == 0, process.stderr[-3000:]
    return process, traces


def lrs(record):
    return [step["lrs"] for step in record["trace"]]


@pytest.mark.parametrize("name", CASES)
def test_resumed_run_uses_bit_identical_lrs(name, tmp_path):
    _, full = driver([*schedule(name), "--save_state", "--save_state_at", *map(str, SAVE_AT), "--output_dir", str(tmp_path)])
    reference = lrs(full[0])
    assert len(reference) == STEPS
    for k in SAVE_AT:
        state = tmp_path / f"state-{k}"
        process, resumed = driver([*schedule(name), "--resume", str(state), "--start_at", str(k)])
        assert lrs(resumed[0]) == reference[k:], f"resumed at {k}"  # exact float equality, every group
        assert "differ from the saved state" not in process.stderr


def test_saved_state_is_plain_data_that_loads_with_weights_only(tmp_path):
    driver([*schedule("cosine_with_restarts_floor"), "--save_state", "--save_state_at", "5", "--output_dir", str(tmp_path)])
    state = torch.load(tmp_path / "state-5" / "scheduler.bin", weights_only=True)
    assert state["sdsched"] == {"name": "cosine_with_restarts_floor", **PLAIN_RESTARTS, "min_value": 0.5, "num_cycles": 2, "num_warmup_steps": 4, "num_training_steps": STEPS}
    assert state["last_epoch"] == 5 and state["lr_lambdas"] == [None, None]


def test_changed_arguments_on_resume_win_and_are_listed_once(tmp_path):
    name = "cosine_with_restarts_floor"
    driver([*schedule(name), "--save_state", "--save_state_at", "10", "--output_dir", str(tmp_path)])
    changed = schedule(name, min_value="0.3", steps=30)
    process, resumed = driver([*changed, "--resume", str(tmp_path / "state-10"), "--start_at", "10"])
    _, fresh = driver(changed)
    assert lrs(resumed[0]) == lrs(fresh[0])[10:]  # the resumed run's own schedule, from the restored step on
    warnings = [line for line in process.stderr.splitlines() if "differ from the saved state" in line]
    assert len(warnings) == 1
    assert "min_value: 0.5 (saved) -> 0.3 (now)" in warnings[0]
    assert "num_training_steps: 24 (saved) -> 30 (now)" in warnings[0]


def test_a_stock_state_resumes_into_a_floored_schedule_and_back(tmp_path):
    stock = ["--lr_scheduler", "cosine", "--max_train_steps", str(STEPS), *LR]
    floored = ["--lr_scheduler", "cosine_floor", "--lr_scheduler_min_value", "0.5", "--max_train_steps", str(STEPS), *LR]
    driver([*stock, "--save_state", "--save_state_at", "8", "--output_dir", str(tmp_path / "stock")])
    process, resumed = driver([*floored, "--resume", str(tmp_path / "stock" / "state-8"), "--start_at", "8"])
    assert lrs(resumed[0]) == lrs(driver(floored)[1][0])[8:]
    assert "no sdsched-plugin settings" in process.stderr
    driver([*floored, "--save_state", "--save_state_at", "8", "--output_dir", str(tmp_path / "floored")])
    _, back = driver([*stock, "--resume", str(tmp_path / "floored" / "state-8"), "--start_at", "8"])
    # a stock LambdaLR (torch's own load_state_dict) keeps the LR the optimizer state holds for
    # the restored step, then follows the stock schedule: the same as any stock resume
    floored_lrs, stock_lrs = lrs(driver(floored)[1][0]), lrs(driver(stock)[1][0])
    assert lrs(back[0])[0] == floored_lrs[8]
    assert lrs(back[0])[1:] == stock_lrs[9:]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def accelerate_launch(processes):
    """The real ``accelerate launch``; --multi_gpu starts torchrun, which on a machine without a
    GPU runs the processes on the CPU with gloo (--cpu alone would start only one)."""
    accelerate = Path(sys.executable).parent / "accelerate"
    return [str(accelerate), "launch", "--multi_gpu", "--num_processes", str(processes), "--num_machines", "1",
            "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(free_port())]  # fmt: skip


def launch_two_processes(argv):
    """Two processes on gloo normally finish in seconds; once, on a heavily loaded machine, a launch
    hung until the timeout. A hung launch (not a failed one) is tried once more on a new port."""
    try:
        return driver(argv, launcher=accelerate_launch(2), env=host_env(CUDA_VISIBLE_DEVICES=""), timeout=240)
    except subprocess.TimeoutExpired:
        return driver(argv, launcher=accelerate_launch(2), env=host_env(CUDA_VISIBLE_DEVICES=""), timeout=240)


@pytest.mark.parametrize("accumulation", [1, 2])
def test_two_processes_log_the_same_lrs_per_optimizer_step_as_one(accumulation):
    # a warmup ratio that is whole in both step units: sd-scripts truncates int(ratio * steps * processes),
    # and takes an int warmup as process steps, so neither of its own schedules is process-invariant otherwise
    argv = [*schedule("cosine_with_restarts_floor"), "--lr_warmup_steps", "0.25", "--gradient_accumulation_steps", str(accumulation)]
    _, single = driver(argv)
    _, double = launch_two_processes(argv)
    assert sorted(double) == [0, 1]
    assert lrs(double[0]) == lrs(double[1]) == lrs(single[0])
    assert len(lrs(single[0])) == STEPS


def alive(pid):
    """Running, not exited: a killed process stays a zombie until its parent (or init) reaps it."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_for_worker_pids(run, folder, ranks, bound=300.0):
    """The PID each rank writes once it is up; a bound on the wait, not a timed assertion."""
    files = [folder / f"hang-rank{rank}.pid" for rank in ranks]
    deadline = time.monotonic() + bound
    while not all(path.exists() for path in files):
        if run.process.poll() is not None:
            pytest.fail(f"the launch ended before its workers were up:\n{run.process.stderr.read()[-3000:]}")
        if time.monotonic() > deadline:
            pytest.fail("the workers of the launch did not start")
        time.sleep(0.2)
    return [int(path.read_text()) for path in files]


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds processes through /proc")
def test_a_timed_out_two_process_launch_leaves_no_process_behind(tmp_path):
    """The orphan of issue 13: a timed-out launch was killed and its rank-1 worker lived on."""
    command = [*accelerate_launch(2), str(DRIVER), "--trace_dir", str(tmp_path), "--hang", "--max_train_steps", "4", *LR]
    run = Run(command, env=host_env(CUDA_VISIBLE_DEVICES=""))
    workers = wait_for_worker_pids(run, tmp_path, [0, 1])
    assert all(alive(pid) for pid in workers) and set(workers) <= set(marked_processes(run.mark))
    with pytest.raises(subprocess.TimeoutExpired):
        run.finish(timeout=0.1)  # what run_driver does with its timeout
    assert [pid for pid in workers if alive(pid)] == []
    assert marked_processes(run.mark) == []
    assert run.process.returncode is not None  # the launcher itself, reaped
