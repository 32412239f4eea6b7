"""Item 3: what a floored schedule costs per training step, against the stock one.

One sample: a fresh optimizer and scheduler (not timed), then ``scheduler.step()`` and
``scheduler.get_last_lr()`` over every step of the schedule, timed with ``perf_counter_ns``
and divided by the step count. Samples of all schedules are interleaved (``common.interleave``).

For scale, one training step of a small model is timed too: a transformer MLP block of CLIP's
text-encoder width (768 -> 3072 -> 768) on one prompt of 77 tokens: forward, backward and
AdamW step on this CPU. A real Stable Diffusion step is far longer.
"""

from __future__ import annotations

import time

import cases
from common import floored_vs_stock, main_json, summary


def per_step_ns(factory, total: int):
    def run() -> float:
        optimizer = cases.optimizer()
        scheduler = factory(optimizer)
        optimizer.step()  # no gradients: changes nothing, but torch then won't warn about the order
        start = time.perf_counter_ns()
        for _ in range(total):
            scheduler.step()
            scheduler.get_last_lr()
        return (time.perf_counter_ns() - start) / total

    return run


def training_step_ms(steps: int) -> dict:
    """A small real training step on the CPU, for scale."""
    import torch

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(768, 3072), torch.nn.GELU(), torch.nn.Linear(3072, 768))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    inputs, target = torch.randn(1, 77, 768), torch.randn(1, 77, 768)
    times = []
    for step in range(steps + 3):
        start = time.perf_counter_ns()
        loss = torch.nn.functional.mse_loss(model(inputs), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if step >= 3:  # the first steps allocate
            times.append((time.perf_counter_ns() - start) / 1e6)
    return {"threads": torch.get_num_threads(), "ms": summary(times)}


def run(total: int, rounds: int) -> dict:
    results = floored_vs_stock(cases.pairs(total), lambda factory: per_step_ns(factory, total), rounds, "ns")
    return {"setup": cases.describe(total), "schedules": results, "training_step": training_step_ms(max(10, rounds))}


if __name__ == "__main__":
    main_json(run)
