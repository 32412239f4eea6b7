#!/usr/bin/env python
"""Does a floor under cosine_with_restarts help a LoRA-style fine-tune? A small, rerunnable test.

The community wiki says that lifting cosine_with_restarts' minimum to 0.5 makes training
progress much faster, and that with Prodigy the stock cosine makes the adapted LR ``d*lr``
settle low and stay low even after a restart. This script measures both on the shape of a
LoRA run, small enough for a 2-core CPU:

1. A denoising diffusion model (diffusers' ``UNet2DModel`` + ``DDPMScheduler``) is pretrained
   on some classes of scikit-learn's 8x8 digits (the data set ships inside scikit-learn).
2. For each seed, a few images of a new class are drawn; a LoRA (peft, on the attention
   projections and the ResNet convolutions) is fine-tuned on them with every schedule and
   both optimizers, from the same base model, the same adapter init and the same batches and
   noise: within a seed the schedule is the only difference.
3. Per step: training loss, the LR multiplier, and for Prodigy ``d * lr`` (sd-scripts' ``lr/d*lr``).
   Every ``eval_every`` steps and at the end: the denoising loss on the held-out images of the
   new class (fixed noise and timesteps); at the end also on held-out images of the old classes.

The schedules are built as sd-scripts builds them: an ``argparse.Namespace`` with sd-scripts'
attribute names goes to ``sdsched_plugin.schedule.arguments.read_request`` (what the patched
``get_scheduler_fix`` calls) for the floored names; the stock names take the branch of
sd-scripts' ``get_scheduler_fix`` that they take there.

    python experiments/floor_vs_cosine.py            # full run: figures + table into docs/experiments/
    python experiments/floor_vs_cosine.py --quick    # seconds, tiny model, 1 seed (the test suite runs it)

Needs ``pip install -e '.[experiment]'`` (scikit-learn, peft, prodigyopt, matplotlib).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import io
import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parent.parent
if importlib.util.find_spec("sdsched_plugin") is None:  # run from a checkout that is not installed
    sys.path.insert(0, str(REPO))
RESULTS_NAME = "floor-vs-cosine-results"
RUNS_NAME = "floor-vs-cosine-runs"


@dataclass(frozen=True)
class Config:
    # model and data
    block_out_channels: tuple[int, ...] = (32, 64)
    norm_num_groups: int = 8
    pretrain_classes: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    new_class: int = 7  # of 6-9, the digit the pretrained model denoises worst
    num_train_timesteps: int = 1000
    # pretraining (once per invocation; every seed fine-tunes the same base model)
    pretrain_steps: int = 1500
    pretrain_batch: int = 64
    pretrain_lr: float = 2e-3
    # fine-tuning: the shape of a LoRA run
    finetune_images: int = 10
    finetune_batch: int = 5
    finetune_steps: int = 400
    lora_rank: int = 4
    weight_decay: float = 0.01
    # AdamW at the LR sd-scripts users start a LoRA with, and at the best constant LR for this
    # model (see sweep_lrs); Prodigy at its usual lr=1.0
    adamw_lrs: tuple[float, ...] = (1e-4, 1e-3)
    sweep_lrs: tuple[float, ...] = (3e-4, 3e-3)  # extra AdamW LRs, constant schedule only
    lr_warmup_steps: int = 0
    # measurement
    seeds: tuple[int, ...] = (0, 1, 2)
    eval_every: int = 50
    eval_timesteps: int = 4  # noise levels per held-out image (stratified over 0..T-1)
    eval_max_images: int | None = None
    old_eval_images: int = 200
    smooth: int = 25  # moving-average window for the training-loss plot


QUICK = Config(
    block_out_channels=(8, 16),
    norm_num_groups=4,
    pretrain_steps=20,
    pretrain_batch=16,
    finetune_images=4,
    finetune_batch=2,
    finetune_steps=12,
    sweep_lrs=(3e-3,),
    seeds=(0,),
    eval_every=4,
    eval_timesteps=2,
    eval_max_images=16,
    old_eval_images=16,
    smooth=3,
)


@dataclass(frozen=True)
class Schedule:
    key: str
    label: str
    lr_scheduler: str
    num_cycles: int = 1
    min_value: float | None = None


SCHEDULES = (
    Schedule("constant", "constant", "constant"),
    Schedule("cwr1", "cosine_with_restarts, 1 cycle", "cosine_with_restarts", 1),
    Schedule("cwr1_floor0.3", "cosine_with_restarts_floor 0.3, 1 cycle", "cosine_with_restarts_floor", 1, 0.3),
    Schedule("cwr1_floor0.5", "cosine_with_restarts_floor 0.5, 1 cycle", "cosine_with_restarts_floor", 1, 0.5),
    Schedule("cwr2", "cosine_with_restarts, 2 cycles", "cosine_with_restarts", 2),
    Schedule("cwr2_floor0.3", "cosine_with_restarts_floor 0.3, 2 cycles", "cosine_with_restarts_floor", 2, 0.3),
    Schedule("cwr2_floor0.5", "cosine_with_restarts_floor 0.5, 2 cycles", "cosine_with_restarts_floor", 2, 0.5),
)


@dataclass(frozen=True)
class Optim:
    key: str
    optimizer_type: str  # sd-scripts' --optimizer_type
    lr: float


def optimizer_settings(cfg: Config) -> list[Optim]:
    return [*(Optim(f"AdamW lr={lr:g}", "AdamW", lr) for lr in cfg.adamw_lrs), Optim("Prodigy lr=1", "Prodigy", 1.0)]


# ---------------------------------------------------------------------------------------------
# Schedules, built the way sd-scripts builds them


def sd_scripts_args(schedule: Schedule, max_train_steps: int, optimizer_type: str, warmup: int | float = 0):
    """The scheduler attributes of sd-scripts' parsed arguments, by sd-scripts' names."""
    return argparse.Namespace(
        lr_scheduler=schedule.lr_scheduler,
        lr_scheduler_min_value=schedule.min_value,
        lr_scheduler_num_cycles=schedule.num_cycles,
        lr_warmup_steps=warmup,
        max_train_steps=max_train_steps,
        lr_scheduler_args=None,
        lr_scheduler_type="",
        optimizer_type=optimizer_type,
        lr_scheduler_power=1.0,
        lr_scheduler_min_lr_ratio=None,
        max_train_epochs=None,
    )


def build_scheduler(args, optimizer, num_processes: int = 1):
    """What the plugin-patched ``train_util.get_scheduler_fix`` returns for ``args``.

    A floored name: the plugin's own reading of the arguments, as in training. A stock name:
    the branch sd-scripts' ``get_scheduler_fix`` takes for it. sd-scripts looks the function
    up in transformers' ``TYPE_TO_SCHEDULER_FUNCTION``; diffusers' functions of the same names
    are the same curves (tests/test_experiment.py compares them step by step), and diffusers is
    already a requirement of this package.
    """
    from diffusers.optimization import TYPE_TO_SCHEDULER_FUNCTION, SchedulerType

    from sdsched_plugin.schedule import arguments

    request = arguments.read_request(args)
    if request is not None:
        return request.build(optimizer, num_processes)
    total = args.max_train_steps * num_processes
    warmup = int(args.lr_warmup_steps * total) if isinstance(args.lr_warmup_steps, float) else args.lr_warmup_steps
    name = SchedulerType(args.lr_scheduler)
    function = TYPE_TO_SCHEDULER_FUNCTION[name]
    if name == SchedulerType.CONSTANT:
        if warmup:
            raise ValueError("constant does not require `num_warmup_steps` (sd-scripts rejects it)")
        return function(optimizer)
    if name == SchedulerType.COSINE_WITH_RESTARTS:
        return function(optimizer, num_warmup_steps=warmup, num_training_steps=total, num_cycles=args.lr_scheduler_num_cycles)
    if name in (SchedulerType.LINEAR, SchedulerType.COSINE):
        return function(optimizer, num_warmup_steps=warmup, num_training_steps=total)
    raise ValueError(f"not used by this experiment: {args.lr_scheduler}")


# ---------------------------------------------------------------------------------------------
# Data and model


def load_digits_images():
    """scikit-learn's 8x8 digits (1797 images, ships with the package) as [-1, 1] tensors."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1) / 16.0 * 2.0 - 1.0
    return images, torch.tensor(digits.target)


def make_unet(cfg: Config):
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=8,
        in_channels=1,
        out_channels=1,
        block_out_channels=cfg.block_out_channels,
        layers_per_block=1,
        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
        up_block_types=("AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=cfg.norm_num_groups,
        attention_head_dim=cfg.block_out_channels[-1],
    )


def make_noise_scheduler(cfg: Config):
    from diffusers import DDPMScheduler

    return DDPMScheduler(num_train_timesteps=cfg.num_train_timesteps)


def diffusion_loss(model, noise_scheduler, x0, t, noise, reduction="mean"):
    noisy = noise_scheduler.add_noise(x0, noise, t)
    return F.mse_loss(model(noisy, t).sample, noise, reduction=reduction)


def pretrain(cfg: Config, images, log) -> dict:
    torch.manual_seed(1234)
    generator = torch.Generator().manual_seed(1234)
    model = make_unet(cfg)
    noise_scheduler = make_noise_scheduler(cfg)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.pretrain_lr, weight_decay=cfg.weight_decay)
    from diffusers.optimization import get_cosine_schedule_with_warmup

    scheduler = get_cosine_schedule_with_warmup(optimizer, min(100, cfg.pretrain_steps // 10), cfg.pretrain_steps)
    losses = []
    for step in range(cfg.pretrain_steps):
        index = torch.randint(0, len(images), (cfg.pretrain_batch,), generator=generator)
        x0 = images[index]
        t = torch.randint(0, cfg.num_train_timesteps, (len(x0),), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        loss = diffusion_loss(model, noise_scheduler, x0, t, noise)
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.item())
        if (step + 1) % max(1, cfg.pretrain_steps // 5) == 0:
            log(f"  pretrain step {step + 1}/{cfg.pretrain_steps}: loss {np.mean(losses[-50:]):.4f}")
    return {key: value.detach().clone() for key, value in model.state_dict().items()}


def make_eval_set(images, n_timesteps: int, cfg: Config, generator):
    """Every image at ``n_timesteps`` stratified noise levels, noise drawn once: every run of
    a seed is scored on exactly the same noisy samples."""
    x0 = images.repeat_interleave(n_timesteps, dim=0)
    strata = torch.arange(n_timesteps).repeat(len(images))
    width = cfg.num_train_timesteps / n_timesteps
    t = (strata * width + torch.rand(len(x0), generator=generator) * width).long().clamp(max=cfg.num_train_timesteps - 1)
    noise = torch.randn(x0.shape, generator=generator)
    return x0, t, noise


@torch.no_grad()
def evaluate(model, noise_scheduler, eval_set, batch: int = 1024) -> float:
    x0, t, noise = eval_set
    total = 0.0
    for start in range(0, len(x0), batch):
        part = slice(start, start + batch)
        total += diffusion_loss(model, noise_scheduler, x0[part], t[part], noise[part], reduction="sum").item()
    return total / x0.numel()


# ---------------------------------------------------------------------------------------------
# Fine-tuning


LORA_TARGETS = r".*(attentions\.\d+\.(to_q|to_k|to_v|to_out\.0)|resnets\.\d+\.(conv1|conv2))$"


def add_lora(model, cfg: Config):
    """peft's LoRA on the attention projections and the ResNet 3x3 convolutions (what
    sd-scripts' LoRA with conv_dim, "LoCon", trains); everything else frozen."""
    from peft import LoraConfig, inject_adapter_in_model

    config = LoraConfig(r=cfg.lora_rank, lora_alpha=cfg.lora_rank, target_modules=LORA_TARGETS, lora_dropout=0.0)
    model = inject_adapter_in_model(config, model)
    for name, parameter in model.named_parameters():
        parameter.requires_grad_("lora_" in name)
    return model


def make_optimizer(optim: Optim, params, cfg: Config):
    if optim.optimizer_type == "AdamW":
        return torch.optim.AdamW(params, lr=optim.lr, weight_decay=cfg.weight_decay)
    if optim.optimizer_type == "Prodigy":
        from prodigyopt import Prodigy

        # the optimizer_args commonly given to sd-scripts for a LoRA with Prodigy
        with contextlib.redirect_stdout(io.StringIO()):  # it prints "Using decoupled weight decay"
            return Prodigy(
                params,
                lr=optim.lr,
                weight_decay=cfg.weight_decay,
                decouple=True,
                use_bias_correction=True,
                safeguard_warmup=True,
                betas=(0.9, 0.99),
            )
    raise ValueError(optim)


def finetune(cfg: Config, base_state, seed: int, schedule: Schedule, optim: Optim, data: dict) -> dict:
    torch.manual_seed(seed)  # the adapter's init: the same for every schedule of this seed
    model = make_unet(cfg)
    model.load_state_dict(base_state)
    model = add_lora(model, cfg)
    model.train()
    noise_scheduler = make_noise_scheduler(cfg)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = make_optimizer(optim, params, cfg)
    args = sd_scripts_args(schedule, cfg.finetune_steps, optim.optimizer_type, cfg.lr_warmup_steps)
    scheduler = build_scheduler(args, optimizer)
    group = optimizer.param_groups[0]
    base_lr = group["initial_lr"]

    generator = torch.Generator().manual_seed(10_000 + seed)  # batches and noise: the same for every schedule
    train_images = data["train"]
    order = torch.empty(0, dtype=torch.long)
    record = {"loss": [], "multiplier": [], "d_lr": [], "eval_steps": [], "heldout": []}

    def score(step):
        model.eval()
        record["eval_steps"].append(step)
        record["heldout"].append(evaluate(model, noise_scheduler, data["eval_new"]))
        model.train()

    score(0)
    for step in range(cfg.finetune_steps):
        if len(order) < cfg.finetune_batch:  # epochs over the few training images, like a LoRA data set
            order = torch.cat([order, torch.randperm(len(train_images), generator=generator)])
        index, order = order[: cfg.finetune_batch], order[cfg.finetune_batch :]
        x0 = train_images[index]
        t = torch.randint(0, cfg.num_train_timesteps, (len(x0),), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        loss = diffusion_loss(model, noise_scheduler, x0, t, noise)
        loss.backward()
        record["multiplier"].append(group["lr"] / base_lr)
        if "d" in group:  # Prodigy: the adapted LR this step uses, as sd-scripts logs it (lr/d*lr)
            record["d_lr"].append(group["d"] * group["lr"])
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        record["loss"].append(loss.item())
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.finetune_steps:
            score(step + 1)
    model.eval()
    record["final_heldout"] = record["heldout"][-1]
    record["best_heldout"] = min(record["heldout"])
    record["final_old_classes"] = evaluate(model, noise_scheduler, data["eval_old"])
    if "d" in group:
        record["final_d"] = group["d"]
    return record


# ---------------------------------------------------------------------------------------------
# Summary, table and figures: everything below reads only the raw results, so --replot can
# redraw them from floor-vs-cosine-runs.json without training again.


def mean_std(values) -> tuple[float, float]:
    values = np.asarray(values, dtype=float)
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else 0.0


def smooth(values, window: int):
    """Trailing moving average (shorter at the start)."""
    values = np.asarray(values, dtype=float)
    cumulative = np.concatenate([[0.0], np.cumsum(values)])
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(0, ends - max(1, window))
    return (cumulative[ends] - cumulative[starts]) / (ends - starts)


def seeds_of(raw) -> list[str]:
    return [str(s) for s in raw["config"]["seeds"]]


def summarize(raw) -> list[dict]:
    """One row per optimizer setting and schedule: means and sample standard deviations over
    seeds; the difference to the stock schedule with the same cycles is paired by seed."""
    seeds = seeds_of(raw)
    steps = raw["config"]["finetune_steps"]
    rows = []
    for optim in raw["optimizers"]:
        for schedule in SCHEDULES:
            by_seed = raw["runs"][optim][schedule.key]
            first = by_seed[seeds[0]]
            row = {"optimizer": optim, "schedule": schedule.key, "label": schedule.label}
            row["mean_multiplier"] = float(np.mean(raw["multipliers"][schedule.key]))
            half = int(np.argmin([abs(s - steps // 2) for s in first["eval_steps"]]))
            row["half_step"] = first["eval_steps"][half]
            for key, pick in (
                ("heldout_half", lambda r: r["heldout"][half]),
                ("heldout_final", lambda r: r["final_heldout"]),
                ("heldout_best", lambda r: r["best_heldout"]),
                ("old_classes_final", lambda r: r["final_old_classes"]),
                ("train_loss_last10pct", lambda r: float(np.mean(r["loss"][-max(1, steps // 10) :]))),
            ):
                row[key], row[key + "_std"] = mean_std([pick(by_seed[s]) for s in seeds])
            if "final_d" in first:
                row["d_final"], row["d_final_std"] = mean_std([by_seed[s]["final_d"] for s in seeds])
            if schedule.min_value is not None:
                stock = raw["runs"][optim][f"cwr{schedule.num_cycles}"]
                differences = [by_seed[s]["final_heldout"] - stock[s]["final_heldout"] for s in seeds]
                row["vs_stock_final"], row["vs_stock_final_std"] = mean_std(differences)
                row["vs_stock_lower"] = int(sum(d < 0 for d in differences))
            rows.append(row)
    return rows


def summarize_lr_check(raw) -> list[dict]:
    """AdamW with the constant schedule at every LR run: is the chosen LR a sensible one?"""
    seeds = seeds_of(raw)
    rows = []
    for optim, by_schedule in raw["runs"].items():
        if not optim.startswith("AdamW"):
            continue
        by_seed = by_schedule["constant"]
        row = {"lr": float(optim.partition("=")[2])}
        for key, pick in (
            ("heldout_final", lambda r: r["final_heldout"]),
            ("heldout_best", lambda r: r["best_heldout"]),
            ("old_classes_final", lambda r: r["final_old_classes"]),
        ):
            row[key], row[key + "_std"] = mean_std([pick(by_seed[s]) for s in seeds])
        rows.append(row)
    return sorted(rows, key=lambda row: row["lr"])


def fmt(mean, std, digits=4):
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(raw, rows: list[dict], lr_rows: list[dict]) -> str:
    n = len(seeds_of(raw))
    baseline = raw["baseline"]
    lines = [
        f"Held-out denoising loss (MSE of the predicted noise) on the new class (digit {raw['config']['new_class']}), "
        f"mean ± sample std over {n} seed(s); lower is better. Before fine-tuning: {fmt(*baseline['new'])}; on the "
        f"old classes {fmt(*baseline['old'])}. *floor − stock*: the floored schedule's final held-out loss minus that "
        f"of stock cosine_with_restarts with the same cycles, seed by seed (mean ± std), and in how many seeds the "
        f"floor was lower.",
        "",
        f"| optimizer | schedule | mean multiplier | held-out @ step {rows[0]['half_step']} | held-out final | "
        f"best held-out | floor − stock, final | old classes, final | Prodigy final d |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        versus = (
            f"{row['vs_stock_final']:+.4f} ± {row['vs_stock_final_std']:.4f} ({row['vs_stock_lower']}/{n} lower)"
            if "vs_stock_final" in row
            else "—"
        )
        d = f"{row['d_final']:.2e} ± {row['d_final_std']:.1e}" if "d_final" in row else "—"
        lines.append(
            f"| {row['optimizer']} | {row['label']} | {row['mean_multiplier']:.3f} | "
            f"{fmt(row['heldout_half'], row['heldout_half_std'])} | {fmt(row['heldout_final'], row['heldout_final_std'])} | "
            f"{fmt(row['heldout_best'], row['heldout_best_std'])} | {versus} | "
            f"{fmt(row['old_classes_final'], row['old_classes_final_std'])} | {d} |"
        )
    lines += [
        "",
        "AdamW with the constant schedule at each LR (the LR check):",
        "",
        "| AdamW lr | held-out final | best held-out | old classes, final |",
        "|---:|---:|---:|---:|",
    ]
    for row in lr_rows:
        lines.append(
            f"| {row['lr']:g} | {fmt(row['heldout_final'], row['heldout_final_std'])} | "
            f"{fmt(row['heldout_best'], row['heldout_best_std'])} | {fmt(row['old_classes_final'], row['old_classes_final_std'])} |"
        )
    return "\n".join(lines) + "\n"


STYLE = {  # colour by floor, line style by cycles; the wiki plots stock in green, floored in purple
    "constant": ("black", "-"),
    "cwr1": ("tab:green", "-"),
    "cwr1_floor0.3": ("tab:orange", "-"),
    "cwr1_floor0.5": ("tab:purple", "-"),
    "cwr2": ("tab:green", "--"),
    "cwr2_floor0.3": ("tab:orange", "--"),
    "cwr2_floor0.5": ("tab:purple", "--"),
}
FAMILIES = (
    ("1 cycle", ("constant", "cwr1", "cwr1_floor0.3", "cwr1_floor0.5")),
    ("2 cycles", ("constant", "cwr2", "cwr2_floor0.3", "cwr2_floor0.5")),
)
LABELS = {s.key: s.label.replace("cosine_with_restarts", "cwr") for s in SCHEDULES}
FIGURES = ("lr", "heldout", "heldout-vs-constant", "train-loss-vs-constant", "prodigy-dlr", "final-vs-constant")


def make_figures(raw, img_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img_dir.mkdir(parents=True, exist_ok=True)
    cfg = raw["config"]
    seeds = seeds_of(raw)
    n = len(seeds)
    runs = raw["runs"]
    optims = raw["optimizers"]
    steps = np.arange(cfg["finetune_steps"])
    eval_steps = runs[optims[0]]["constant"][seeds[0]]["eval_steps"]
    written = []

    def save(fig, name):
        path = img_dir / f"floor-vs-cosine-{name}.png"
        fig.savefig(path, dpi=100, bbox_inches="tight")
        plt.close(fig)
        written.append(path)

    def draw(ax, key, x, values, spread=True):
        """Mean over seeds; a band of ± 1 std across seeds."""
        colour, style = STYLE[key]
        mean = values.mean(axis=0)
        ax.plot(x, mean, color=colour, linestyle=style, label=LABELS[key], linewidth=1.6)
        if spread and n > 1:
            std = values.std(axis=0, ddof=1)
            ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.1, linewidth=0)

    def grid(title, panel, suptitle, ylabel):
        """A row per optimizer setting, a column per family (1 cycle, 2 cycles)."""
        fig, axes = plt.subplots(len(optims), 2, figsize=(11, 3.2 * len(optims)), sharex=True, squeeze=False)
        for row_axes, optim in zip(axes, optims):
            for ax, (family, keys) in zip(row_axes, FAMILIES):
                for key in keys:
                    panel(ax, optim, key)
                ax.set_title(f"{optim}, {family}: {title}", fontsize=10)
                ax.grid(alpha=0.3)
                ax.legend(fontsize=7)
            row_axes[0].set_ylabel(ylabel, fontsize=9)
        for ax in axes[-1]:
            ax.set_xlabel("step")
        fig.suptitle(suptitle, fontsize=9)
        fig.tight_layout()
        return fig

    def paired(optim, key, field):
        return np.array([np.asarray(runs[optim][key][s][field]) - np.asarray(runs[optim]["constant"][s][field]) for s in seeds])

    # 1. the schedules as built
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.4), sharey=True)
    for ax, (title, keys) in zip(axes, FAMILIES):
        for key in keys:
            colour, style = STYLE[key]
            ax.plot(steps, raw["multipliers"][key], color=colour, linestyle=style, label=LABELS[key], linewidth=1.8)
        ax.set_title(f"LR multiplier as built, {title}")
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("multiplier")
    save(fig, "lr")

    # 2. held-out loss during training, as it is
    def heldout(ax, optim, key):
        draw(ax, key, eval_steps, np.array([runs[optim][key][s]["heldout"] for s in seeds]), spread=False)
        if key == "constant":
            ax.axhline(raw["baseline"]["new"][0], color="gray", linewidth=0.8, linestyle=":", label="before fine-tuning")

    save(grid("held-out loss", heldout, f"new class, mean over {n} seed(s)", "held-out loss"), "heldout")

    # 3. and against constant, seed by seed: the same batches, noise and adapter init
    def heldout_vs_constant(ax, optim, key):
        draw(ax, key, eval_steps, paired(optim, key, "heldout"))

    save(
        grid(
            "held-out − constant",
            heldout_vs_constant,
            f"held-out loss minus constant's in the same seed; mean over {n} seed(s), band ± 1 std; below 0: ahead of constant",
            "Δ held-out loss",
        ),
        "heldout-vs-constant",
    )

    # 4. training loss against constant (same batches and noise, so the difference is not noise)
    def train_vs_constant(ax, optim, key):
        values = paired(optim, key, "loss")
        draw(ax, key, steps, np.array([smooth(v, cfg["smooth"]) for v in values]))

    save(
        grid(
            "training loss − constant",
            train_vs_constant,
            f"training loss minus constant's on the same batch and noise, moving average of {cfg['smooth']} steps; "
            f"mean over {n} seed(s), band ± 1 std",
            "Δ training loss",
        ),
        "train-loss-vs-constant",
    )

    # 5. Prodigy's adapted LR, the wiki's second plot
    prodigy = [o for o in optims if o.startswith("Prodigy")]
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), sharey=True)
    for ax, (family, keys) in zip(axes, FAMILIES):
        for key in keys:
            if prodigy:
                draw(ax, key, steps, np.array([runs[prodigy[0]][key][s]["d_lr"] for s in seeds]))
        ax.set_title(f"Prodigy: d*lr, the LR it applies ({family})", fontsize=10)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    axes[0].set_ylabel("d * lr")
    save(fig, "prodigy-dlr")

    # 6. the end of the run against constant, every seed
    fig, axes = plt.subplots(1, len(optims), figsize=(5 * len(optims), 4.2), squeeze=False)
    for ax, optim in zip(axes[0], optims):
        ax.axhline(0, color="black", linewidth=0.8)
        for i, schedule in enumerate(SCHEDULES):
            values = [runs[optim][schedule.key][s]["final_heldout"] - runs[optim]["constant"][s]["final_heldout"] for s in seeds]
            mean, std = mean_std(values)
            colour = STYLE[schedule.key][0]
            ax.scatter([i - 0.12] * len(values), values, color=colour, alpha=0.5, s=16)
            ax.errorbar([i + 0.12], [mean], yerr=[std], fmt="o", color=colour, capsize=4, markersize=6)
        ax.set_xticks(range(len(SCHEDULES)), [LABELS[s.key] for s in SCHEDULES], rotation=35, ha="right", fontsize=8)
        ax.set_title(f"{optim}: final held-out − constant", fontsize=10)
        ax.grid(alpha=0.3, axis="y")
        ax.ticklabel_format(axis="y", useOffset=False)
    axes[0][0].set_ylabel("Δ held-out loss (dots: seeds; bar: mean ± std)")
    fig.tight_layout()
    save(fig, "final-vs-constant")
    return written


# ---------------------------------------------------------------------------------------------


def round_floats(value, digits=6):
    if isinstance(value, float):
        return float(f"{value:.{digits}g}") if math.isfinite(value) else value
    if isinstance(value, dict):
        return {k: round_floats(v, digits) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [round_floats(v, digits) for v in value]
    return value


def split_new_class(new_images, cfg: Config, generator):
    """A seed's few training images of the new class; the rest of the class is held out."""
    permutation = torch.randperm(len(new_images), generator=generator)
    train = new_images[permutation[: cfg.finetune_images]]
    heldout = new_images[permutation[cfg.finetune_images :]][: cfg.eval_max_images]
    return train, heldout


def train_all(cfg: Config, threads: int, log=print) -> dict:
    """Pretrain once, then every fine-tune; returns the raw results (plain JSON values)."""
    start = time.perf_counter()
    torch.set_num_threads(threads)
    images, labels = load_digits_images()
    old_images = images[torch.isin(labels, torch.tensor(cfg.pretrain_classes))]
    # a fixed slice of the old classes stays out of pretraining, to score forgetting on
    old_order = torch.randperm(len(old_images), generator=torch.Generator().manual_seed(7))
    old_eval, old_train = old_images[old_order[: cfg.old_eval_images]], old_images[old_order[cfg.old_eval_images :]]
    new_images = images[labels == cfg.new_class]

    log(f"pretraining on digits {cfg.pretrain_classes} ({len(old_train)} images), {cfg.pretrain_steps} steps")
    base_state = pretrain(cfg, old_train, log)
    pretrain_seconds = time.perf_counter() - start

    optims = optimizer_settings(cfg)
    jobs = [(optim, schedule) for optim in optims for schedule in SCHEDULES]
    jobs += [(Optim(f"AdamW lr={lr:g}", "AdamW", lr), SCHEDULES[0]) for lr in cfg.sweep_lrs]  # the LR check
    runs: dict = {}
    multipliers = {}
    baselines_new, baselines_old = [], []
    for seed in cfg.seeds:
        generator = torch.Generator().manual_seed(seed)
        train, heldout = split_new_class(new_images, cfg, generator)
        data = {
            "train": train,
            "eval_new": make_eval_set(heldout, cfg.eval_timesteps, cfg, generator),
            "eval_old": make_eval_set(old_eval, cfg.eval_timesteps, cfg, generator),
        }
        base = make_unet(cfg)
        base.load_state_dict(base_state)
        base.eval()
        noise_scheduler = make_noise_scheduler(cfg)
        baselines_new.append(evaluate(base, noise_scheduler, data["eval_new"]))
        baselines_old.append(evaluate(base, noise_scheduler, data["eval_old"]))
        for optim, schedule in jobs:
            t0 = time.perf_counter()
            record = finetune(cfg, base_state, seed, schedule, optim, data)
            multipliers.setdefault(schedule.key, record["multiplier"])
            if not np.allclose(record["multiplier"], multipliers[schedule.key], rtol=0, atol=1e-9):
                raise AssertionError(f"{schedule.key}: the multipliers differ between runs")
            del record["multiplier"]  # the same in every run of a schedule: kept once
            if not record["d_lr"]:
                del record["d_lr"]
            runs.setdefault(optim.key, {}).setdefault(schedule.key, {})[str(seed)] = record
            log(
                f"seed {seed} {optim.key:13s} {schedule.label:42s} held-out {record['final_heldout']:.4f} "
                f"(best {record['best_heldout']:.4f})  {time.perf_counter() - t0:5.1f}s"
            )
    return {
        "seconds": time.perf_counter() - start,
        "pretrain_seconds": pretrain_seconds,
        "threads": threads,
        "cpu_count": os.cpu_count(),
        "versions": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            **{name: _version(name) for name in ("diffusers", "peft", "prodigyopt", "scikit-learn", "sdsched-plugin")},
        },
        "config": asdict(cfg),
        "optimizers": [o.key for o in optims],
        "baseline": {"new": mean_std(baselines_new), "old": mean_std(baselines_old)},
        "multipliers": multipliers,
        "runs": runs,
    }


def report(raw, out: Path, log=print) -> dict:
    """The table (.md, .json) and the figures, from the raw results."""
    out.mkdir(parents=True, exist_ok=True)
    rows = summarize(raw)
    lr_rows = summarize_lr_check(raw)
    figures = make_figures(raw, out / "img")
    table = markdown_table(raw, rows, lr_rows)
    header = (
        f"# floor vs cosine: results ({raw['mode']} run)\n\n"
        f"`{raw['command']}`: {raw['seconds'] / 60:.1f} min (pretraining {raw['pretrain_seconds'] / 60:.1f} min), "
        f"torch {raw['versions']['torch']}, {raw['threads']} thread(s) on {raw['cpu_count']} CPU core(s). "
        f"Raw per-step results: `{RUNS_NAME}.json`.\n\n"
    )
    (out / f"{RESULTS_NAME}.md").write_text(header + table)
    result = {key: raw[key] for key in ("mode", "command", "seconds", "pretrain_seconds", "threads", "cpu_count", "versions")}
    result |= {
        "config": raw["config"],
        "schedules": [asdict(s) for s in SCHEDULES],
        "optimizers": raw["optimizers"],
        "baseline": raw["baseline"],
        "rows": rows,
        "lr_check": lr_rows,
        "figures": [p.relative_to(out).as_posix() for p in figures],
    }
    (out / f"{RESULTS_NAME}.json").write_text(json.dumps(round_floats(result), indent=1) + "\n")
    log(table)
    log(f"wrote {out / RESULTS_NAME}.md and .json, {len(figures)} figures in {out / 'img'}")
    return result


def run(cfg: Config, out: Path, quick: bool, threads: int = 1, log=print) -> dict:
    raw = train_all(cfg, threads, log)
    raw["mode"] = "quick" if quick else "full"
    raw["command"] = "python experiments/floor_vs_cosine.py" + (" --quick" if quick else "")
    raw = round_floats(raw)  # what is saved is what is reported, so --replot gives the same table
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{RUNS_NAME}.json").write_text(json.dumps(raw, separators=(",", ":")) + "\n")
    log(f"done in {raw['seconds'] / 60:.1f} min")
    return report(raw, out, log)


def _version(distribution: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(distribution)
    except PackageNotFoundError:
        return None


def experiment_parser(description: str) -> argparse.ArgumentParser:
    """The flags every experiment script here takes (this one, image_order.py)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny model, few steps, 1 seed: seconds (the test suite runs it)")
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="where the table (.md, .json), the raw results and img/ go (default: docs/experiments; with --quick experiments/out-quick)",
    )
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default: 3; with --quick 1)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a shared 2-core machine, 2 threads made this small model several times slower)",
    )
    return parser


def config_and_out(options, full, quick):
    """The config (``quick`` or ``full``, with --seeds) and the output folder the flags ask for."""
    out = options.out or (REPO / ("experiments/out-quick" if options.quick else "docs/experiments"))
    cfg = quick if options.quick else full
    if options.seeds is not None:
        cfg = replace(cfg, seeds=tuple(range(options.seeds)))
    return cfg, out


def main(argv=None) -> int:
    parser = experiment_parser(__doc__.split("\n\n")[0])
    parser.add_argument("--replot", action="store_true", help=f"redraw the table and figures from OUT/{RUNS_NAME}.json, no training")
    options = parser.parse_args(argv)
    cfg, out = config_and_out(options, Config(), QUICK)
    if options.replot:
        report(json.loads((out / f"{RUNS_NAME}.json").read_text()), out)
        return 0
    run(cfg, out, options.quick, options.threads)
    return 0

if __name__ == "__main__":
    sys.exit(main())
