"""Regenerate the plots in docs/img and print the numbers quoted in docs/*.md, all from
``sdsched preview`` itself. Run from the repository root: ``python docs/make_docs.py``."""

import contextlib
import io
import json
from pathlib import Path

from sdsched_plugin import cli

IMG = Path(__file__).parent / "img"
COMMON = ["--max_train_steps=1000", "--steps_per_epoch=100", "--learning_rate=1e-4"]

PLOTS = {
    "cosine_with_restarts_floor-vs-stock": ["--lr_scheduler=cosine_with_restarts_floor", "--lr_scheduler_min_value=0.5",
                                            "--lr_scheduler_num_cycles=2", "--lr_warmup_steps=0.05", "--compare=cosine_with_restarts"],
    "cosine_floor-vs-stock": ["--lr_scheduler=cosine_floor", "--lr_scheduler_min_value=0.5", "--compare=cosine,cosine_floor:min_value=0.3"],
    "linear_floor-vs-stock": ["--lr_scheduler=linear_floor", "--lr_scheduler_min_value=0.5", "--lr_warmup_steps=0.1", "--compare=linear"],
    "polynomial_floor-vs-stock": ["--lr_scheduler=polynomial_floor", "--lr_scheduler_min_value=0.5", "--lr_scheduler_power=2",
                                  "--compare=polynomial,polynomial_floor:power=0.5"],
    # the restart controls (sd-scripts #73), each against the plain floored restarts
    "restarts-cycle_decay": ["--lr_scheduler=cosine_with_restarts_floor", "--lr_scheduler_min_value=0.3", "--lr_scheduler_num_cycles=3",
                             "--lr_scheduler_cycle_decay=0.5", "--compare=cosine_with_restarts_floor:cycle_decay=1.0"],
    "restarts-cycle_mul": ["--lr_scheduler=cosine_with_restarts_floor", "--lr_scheduler_min_value=0.3", "--lr_scheduler_num_cycles=3",
                           "--lr_scheduler_cycle_mul=2", "--compare=cosine_with_restarts_floor:cycle_mul=1.0"],
    "restarts-restart_warmup": ["--lr_scheduler=cosine_with_restarts_floor", "--lr_scheduler_min_value=0.3", "--lr_scheduler_num_cycles=3",
                                "--lr_warmup_steps=0.05", "--lr_scheduler_restart_warmup_steps=0.15"],
    "restarts-floor_mode": ["--lr_scheduler=cosine_with_restarts_floor", "--lr_scheduler_min_value=0.3", "--lr_scheduler_num_cycles=2",
                            "--lr_scheduler_floor_mode=clamp", "--compare=cosine_with_restarts_floor:floor_mode=rescale"],
    "restarts-all": ["--lr_scheduler=cosine_with_restarts_floor", "--lr_scheduler_min_value=0.3", "--lr_scheduler_num_cycles=4",
                     "--lr_warmup_steps=0.05", "--lr_scheduler_cycle_decay=0.8", "--lr_scheduler_cycle_mul=1.5",
                     "--lr_scheduler_restart_warmup_steps=0.1", "--compare=cosine_with_restarts"],
    # the text encoder on its own schedule (sd-scripts #861): a LoRA's two groups, the text encoder stopped after 6 epochs
    "text-encoder-stop": ["--network_module=networks.lora", "--text_encoder_lr=5e-5", "--lr_scheduler=cosine_floor",
                          "--lr_scheduler_min_value=0.5", "--lr_scheduler_te_min_value=0.1", "--lr_scheduler_te_stop_epochs=6",
                          "--lr_warmup_steps=0.05"],
}  # fmt: skip

# the wiki's open question: how much more LR (or how many more steps) to match constant?
QUESTIONS = [
    ["--lr_scheduler=cosine_with_restarts", "--lr_scheduler_num_cycles=1"],
    ["--lr_scheduler=cosine_with_restarts", "--lr_scheduler_num_cycles=3"],
    ["--lr_scheduler=cosine_with_restarts", "--lr_scheduler_num_cycles=1", "--lr_warmup_steps=0.1"],
    ["--lr_scheduler=cosine_with_restarts_floor", "--lr_scheduler_min_value=0.3"],
    ["--lr_scheduler=cosine_with_restarts_floor", "--lr_scheduler_min_value=0.5"],
    ["--lr_scheduler=cosine_with_restarts_floor", "--lr_scheduler_min_value=0.6"],
    ["--lr_scheduler=linear"],
]


def preview_json(argv):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        cli.main(["preview", *argv, "--json"])
    return json.loads(out.getvalue())


def main():
    IMG.mkdir(exist_ok=True)
    for name, argv in PLOTS.items():
        with contextlib.redirect_stdout(io.StringIO()):
            cli.main(["preview", *COMMON, *argv, f"--plot={IMG / (name + '.png')}", "--plot_size=1000x450"])
        print(f"wrote docs/img/{name}.png")
    print("\n| settings | mean multiplier | LR or steps × to match constant | steps below 10% of peak |")
    print("|---|---|---|---|")
    for argv in QUESTIONS:
        schedule = preview_json(["--max_train_steps=100000", *argv])["schedules"][0]
        print(
            f"| `{' '.join(argv)}` | {schedule['mean_multiplier']:.4f} | ×{schedule['match_constant_factor']:.3f} "
            f"| {100 * schedule['share_below_10pct_of_peak']:.1f}% |"
        )


if __name__ == "__main__":
    main()
