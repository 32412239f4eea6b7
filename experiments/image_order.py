#!/usr/bin/env python
"""Where an image falls in the run: does the schedule decide how much of it is learned? (experiment v2)

The wiki's argument is about images: with cosine to 0, the images met last are trained at an LR
near 0. ``sdsched preview`` reports that exposure for a real run; this script measures what it does
to learning, on the setup of ``floor_vs_cosine.py`` (a tiny diffusers UNet2DModel pretrained on
scikit-learn's 8x8 digits 0-5, LoRA fine-tuning with peft), shaped to isolate the mechanism:

1. The fine-tuning set is four new classes (digits 6, 7, 8, 9), ``per_class`` images each, trained
   for ONE epoch with no repeats, in class blocks: all images of one class, then the next. Each
   class's images therefore meet one quarter of the schedule.
2. The class order is rotated (a Latin square: 4 orders), so that every class is at every
   position once and a position's result is not one class's difficulty.
3. Schedules, built as sd-scripts builds them (``floor_vs_cosine.build_scheduler``): constant,
   stock cosine and linear (both to 0), REX to 0 (the plugin's ``rex``), cosine_floor 0.5; no warmup.
   AdamW at 1e-3 (the other experiment's best constant LR) and Prodigy at lr=1.
4. Per class: the held-out denoising loss before and after fine-tuning (fixed noise and timesteps),
   and the relative improvement ``(before - after) / before``; the mean LR multiplier its block
   met; the old classes' held-out loss after (forgetting).

    python experiments/image_order.py            # full run: docs/experiments/image-order*.{md,json} + img/
    python experiments/image_order.py --quick    # seconds, tiny model, 1 seed (the test suite runs it)

Needs ``pip install -e '.[experiment]'`` (scikit-learn, peft, prodigyopt, matplotlib).
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import floor_vs_cosine as base  # noqa: E402  (the model, data, LoRA, optimizers and schedules of v1)

REPO = base.REPO
NAME = "image-order"


@dataclass(frozen=True)
class Config:
    block_out_channels: tuple[int, ...] = (32, 64)
    norm_num_groups: int = 8
    pretrain_classes: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    new_classes: tuple[int, ...] = (6, 7, 8, 9)
    num_train_timesteps: int = 1000
    pretrain_steps: int = 1500
    pretrain_batch: int = 64
    pretrain_lr: float = 2e-3
    per_class: int = 60  # training images of each new class: one epoch, no repeats
    batch: int = 3  # so each class block is per_class / batch optimizer updates
    lora_rank: int = 4
    weight_decay: float = 0.01
    seeds: tuple[int, ...] = (0, 1, 2)
    eval_timesteps: int = 4
    eval_max_images: int | None = 80  # held-out images per new class
    old_eval_images: int = 200


QUICK = Config(block_out_channels=(8, 16), norm_num_groups=4, pretrain_steps=20, pretrain_batch=16, per_class=4, batch=2,
               seeds=(0,), eval_timesteps=2, eval_max_images=8, old_eval_images=16)  # fmt: skip

SCHEDULES = (
    base.Schedule("constant", "constant", "constant"),
    base.Schedule("cosine", "cosine (to 0)", "cosine"),
    base.Schedule("linear", "linear (to 0)", "linear"),
    base.Schedule("rex", "REX (to 0)", "rex"),
    base.Schedule("cosine_floor0.5", "cosine_floor 0.5", "cosine_floor", 1, 0.5),
)
OPTIMS = (base.Optim("AdamW lr=0.001", "AdamW", 1e-3), base.Optim("Prodigy lr=1", "Prodigy", 1.0))


def rotations(classes: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The Latin square of class orders: each class at each position once."""
    return [classes[r:] + classes[:r] for r in range(len(classes))]


def block_order(train: dict[int, torch.Tensor], order: tuple[int, ...], generator) -> tuple[torch.Tensor, list[int]]:
    """One epoch in class blocks: the images of ``order[0]`` (shuffled within the block), then ``order[1]``..."""
    images, labels = [], []
    for klass in order:
        block = train[klass][torch.randperm(len(train[klass]), generator=generator)]
        images.append(block)
        labels += [klass] * len(block)
    return torch.cat(images), labels


def finetune(cfg: Config, base_state, seed: int, rotation: int, order, schedule, optim, data: dict) -> dict:
    torch.manual_seed(seed)  # the adapter's init: the same for every schedule and order of this seed
    model = base.make_unet(cfg)
    model.load_state_dict(base_state)
    model = base.add_lora(model, cfg)
    model.train()
    noise_scheduler = base.make_noise_scheduler(cfg)
    optimizer = base.make_optimizer(optim, [p for p in model.parameters() if p.requires_grad], cfg)
    images, labels = data["epochs"][rotation]
    steps = math.ceil(len(images) / cfg.batch)
    scheduler = base.build_scheduler(base.sd_scripts_args(schedule, steps, optim.optimizer_type), optimizer)
    group = optimizer.param_groups[0]
    initial = group["initial_lr"]
    generator = torch.Generator().manual_seed(20_000 + 100 * seed + rotation)  # timesteps and noise: the same for every schedule
    multipliers, block_multipliers = [], {klass: [] for klass in order}
    for step in range(steps):
        part = slice(step * cfg.batch, (step + 1) * cfg.batch)
        x0 = images[part]
        t = torch.randint(0, cfg.num_train_timesteps, (len(x0),), generator=generator)
        noise = torch.randn(x0.shape, generator=generator)
        loss = base.diffusion_loss(model, noise_scheduler, x0, t, noise)
        loss.backward()
        multiplier = group["lr"] / initial
        multipliers.append(multiplier)
        for klass in labels[part]:  # each image: the multiplier of the update that holds it
            block_multipliers[klass].append(multiplier)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
    model.eval()
    after = {klass: base.evaluate(model, noise_scheduler, data["eval"][klass]) for klass in order}
    return {
        "order": list(order),
        "multipliers": multipliers,
        "classes": {
            str(klass): {
                "position": position + 1,
                "before": data["before"][klass],
                "after": after[klass],
                "improvement": (data["before"][klass] - after[klass]) / data["before"][klass],
                "mean_multiplier": float(np.mean(block_multipliers[klass])),
            }
            for position, klass in enumerate(order)
        },
        "old_after": base.evaluate(model, noise_scheduler, data["eval_old"]),
    }


def train_all(cfg: Config, threads: int, log=print) -> dict:
    start = time.perf_counter()
    torch.set_num_threads(threads)
    images, labels = base.load_digits_images()
    old_images = images[torch.isin(labels, torch.tensor(cfg.pretrain_classes))]
    old_order = torch.randperm(len(old_images), generator=torch.Generator().manual_seed(7))
    old_eval, old_train = old_images[old_order[: cfg.old_eval_images]], old_images[old_order[cfg.old_eval_images :]]
    log(f"pretraining on digits {cfg.pretrain_classes} ({len(old_train)} images), {cfg.pretrain_steps} steps")
    base_state = base.pretrain(cfg, old_train, log)
    pretrain_seconds = time.perf_counter() - start
    noise_scheduler = base.make_noise_scheduler(cfg)
    runs = []
    for seed in cfg.seeds:
        generator = torch.Generator().manual_seed(seed)
        train, evals = {}, {}
        for klass in cfg.new_classes:
            pool = images[labels == klass]
            pool = pool[torch.randperm(len(pool), generator=generator)]
            train[klass] = pool[: cfg.per_class]
            evals[klass] = base.make_eval_set(pool[cfg.per_class :][: cfg.eval_max_images], cfg.eval_timesteps, cfg, generator)
        pretrained = base.make_unet(cfg)
        pretrained.load_state_dict(base_state)
        pretrained.eval()
        data = {
            "eval": evals,
            "eval_old": base.make_eval_set(old_eval, cfg.eval_timesteps, cfg, generator),
            "before": {klass: base.evaluate(pretrained, noise_scheduler, evals[klass]) for klass in cfg.new_classes},
            "epochs": [block_order(train, order, generator) for order in rotations(cfg.new_classes)],
        }
        old_before = base.evaluate(pretrained, noise_scheduler, data["eval_old"])
        for rotation, order in enumerate(rotations(cfg.new_classes)):
            for optim in OPTIMS:
                for schedule in SCHEDULES:
                    t0 = time.perf_counter()
                    record = finetune(cfg, base_state, seed, rotation, order, schedule, optim, data)
                    record.update(seed=seed, rotation=rotation, optimizer=optim.key, schedule=schedule.key, old_before=old_before)
                    runs.append(record)
                    gains = " ".join(f"{c['improvement']:+.3f}" for c in sorted(record["classes"].values(), key=lambda c: c["position"]))
                    log(f"seed {seed} order {order} {optim.key:14s} {schedule.label:17s} improvement by position {gains}  {time.perf_counter() - t0:4.1f}s")
    return {
        "seconds": time.perf_counter() - start,
        "pretrain_seconds": pretrain_seconds,
        "threads": threads,
        "cpu_count": os.cpu_count(),
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     **{name: base._version(name) for name in ("diffusers", "peft", "prodigyopt", "scikit-learn", "sdsched-plugin")}},  # fmt: skip
        "config": asdict(cfg),
        "runs": runs,
    }


def summarize(raw) -> dict:
    """Per optimizer and schedule: per position (1-4), the mean and standard deviation over seeds x
    rotations of the relative improvement, the mean multiplier the block met; the mean over all
    classes; the spread first - last position; the old classes' change (forgetting)."""
    table = {}
    positions = range(1, len(raw["config"]["new_classes"]) + 1)
    for optim in dict.fromkeys(run["optimizer"] for run in raw["runs"]):
        for schedule in dict.fromkeys(run["schedule"] for run in raw["runs"]):
            runs = [run for run in raw["runs"] if run["optimizer"] == optim and run["schedule"] == schedule]
            cells = {p: [c for run in runs for c in run["classes"].values() if c["position"] == p] for p in positions}
            improvement = {p: base.mean_std([c["improvement"] for c in cells[p]]) for p in positions}
            everything = [c["improvement"] for run in runs for c in run["classes"].values()]
            firsts, lasts = cells[positions[0]], cells[positions[-1]]
            table.setdefault(optim, {})[schedule] = {
                "n": {str(p): len(cells[p]) for p in positions},
                "improvement": {str(p): improvement[p] for p in positions},
                "mean_multiplier": {str(p): float(np.mean([c["mean_multiplier"] for c in cells[p]])) for p in positions},
                "overall": base.mean_std(everything),
                "first_minus_last": base.mean_std([f["improvement"] - l["improvement"] for f, l in zip(firsts, lasts)]),
                "old_change": base.mean_std([(run["old_after"] - run["old_before"]) / run["old_before"] for run in runs]),
            }
    return table


def markdown(raw, table) -> str:
    labels = {s.key: s.label for s in SCHEDULES}
    positions = [str(p) for p in range(1, len(raw["config"]["new_classes"]) + 1)]
    lines = []
    for optim, rows in table.items():
        lines += [f"### {optim}", "",
                  "| schedule | " + " | ".join(f"position {p}: improvement (mean multiplier)" for p in positions)
                  + " | all classes | first − last | old classes' loss change |",
                  "|---|" + "---|" * (len(positions) + 3)]  # fmt: skip
        for key, row in rows.items():
            cells = [f"{base.fmt(*row['improvement'][p], 3)} ({row['mean_multiplier'][p]:.2f})" for p in positions]
            lines.append(f"| {labels.get(key, key)} | " + " | ".join(cells)
                         + f" | {base.fmt(*row['overall'], 3)} | {base.fmt(*row['first_minus_last'], 3)} | {base.fmt(*row['old_change'], 3)} |")  # fmt: skip
        lines.append("")
    n = next(iter(next(iter(table.values())).values()))["n"]["1"]
    lines.append(f"Improvement: `(held-out loss before - after) / before` of a class, mean ± std over {n} runs "
                 "(seeds x class orders); multiplier: the mean LR multiplier its block met. Old classes: relative change of their held-out loss (positive = forgotten).")  # fmt: skip
    return "\n".join(lines) + "\n"


def make_figures(raw, table, img: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img.mkdir(parents=True, exist_ok=True)
    labels = {s.key: s.label for s in SCHEDULES}
    positions = list(range(1, len(raw["config"]["new_classes"]) + 1))
    written = []
    figure, axes = plt.subplots(1, len(table), figsize=(11, 4), layout="constrained", squeeze=False)
    for ax, (optim, rows) in zip(axes[0], table.items()):
        for key, row in rows.items():
            means = [row["improvement"][str(p)][0] for p in positions]
            stds = [row["improvement"][str(p)][1] for p in positions]
            ax.errorbar(positions, means, yerr=stds, marker="o", capsize=3, label=labels.get(key, key))
        ax.set_title(optim)
        ax.set_xlabel("position of the class's block in the one-epoch order")
        ax.set_ylabel("held-out improvement of the class")
        ax.set_xticks(positions)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    path = img / f"{NAME}-position.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    written.append(path)

    figure, ax = plt.subplots(figsize=(9, 3.5), layout="constrained")
    first = {run["schedule"]: run["multipliers"] for run in raw["runs"] if run["optimizer"] == OPTIMS[0].key}
    steps = len(next(iter(first.values())))
    for key, values in first.items():
        ax.plot(range(1, steps + 1), values, label=labels.get(key, key))
    for boundary in range(1, len(positions)):
        ax.axvline(boundary * steps / len(positions) + 0.5, color="0.5", linewidth=0.8, alpha=0.6)
    ax.set_xlabel("optimizer update (vertical lines: the class blocks)")
    ax.set_ylabel("LR multiplier")
    ax.legend(fontsize=8)
    path = img / f"{NAME}-lr.png"
    figure.savefig(path, dpi=100)
    plt.close(figure)
    written.append(path)
    return written


def run(cfg: Config, out: Path, quick: bool, threads: int = 1, log=print) -> dict:
    raw = train_all(cfg, threads, log)
    raw["mode"] = "quick" if quick else "full"
    raw["command"] = "python experiments/image_order.py" + (" --quick" if quick else "")
    raw = base.round_floats(raw)
    table = summarize(raw)
    out.mkdir(parents=True, exist_ok=True)
    figures = make_figures(raw, table, out / "img")
    result = {**{key: raw[key] for key in ("mode", "command", "seconds", "pretrain_seconds", "threads", "cpu_count", "versions", "config")},
              "schedules": [asdict(s) for s in SCHEDULES], "summary": table,
              "figures": [p.relative_to(out).as_posix() for p in figures], "runs": raw["runs"]}  # fmt: skip
    (out / f"{NAME}-results.json").write_text(json.dumps(base.round_floats(result), separators=(",", ":")) + "\n")
    text = markdown(raw, table)
    (out / f"{NAME}-table.md").write_text(
        f"# image order: results ({raw['mode']} run)\n\n`{raw['command']}`: {raw['seconds'] / 60:.1f} min "
        f"(pretraining {raw['pretrain_seconds'] / 60:.1f} min), torch {raw['versions']['torch']}, {threads} thread(s).\n\n" + text
    )
    log(text)
    log(f"done in {raw['seconds'] / 60:.1f} min; wrote {out / NAME}-results.json, -table.md, {len(figures)} figures")
    return result


def main(argv=None) -> int:
    options = base.experiment_parser(__doc__.split("\n\n")[0]).parse_args(argv)
    cfg, out = base.config_and_out(options, Config(), QUICK)
    run(cfg, out, options.quick, options.threads)
    return 0

if __name__ == "__main__":
    sys.exit(main())
