"""The picture of a preview: the LR of every param group at every optimizer update.

One job: draw a preview result (the dict ``sdsched preview`` computes) into a PNG that people can
read: the y axis in the notation learning rates are written in (``1e-4``, not ``0.00010``); one
colour per schedule, labelled with the settings that shape it; one line style per param group
(U-Net, text encoder), so every group is visible, not only the first; epoch boundaries as light
vertical lines; the legend under the plot, never over the curves; titles wrapped, never clipped.

Imports matplotlib (the ``[plot]`` extra) inside the functions only; no torch.
"""

from __future__ import annotations

import math
import textwrap

from ..schedule.cycles import PLAIN
from ..schedule.text_encoder import GIVEN_KEYS

DPI = 100
GROUP_STYLES = ("-", "--", ":", "-.")
# settings every curve has whose value the title or the x axis already says
NOT_SHAPING = ("name", "num_training_steps", *GIVEN_KEYS)  # the text encoder's groups and stop: its own line says them
MAX_EPOCH_LINES = 200  # more than this and the lines would paint the plot grey


def lr_text(value: float) -> str:
    """A learning rate as people write one: 1e-4, 5e-5, 2.5e-5, 0; plain below 1e3 and at or
    above 0.01 (1, 0.5 for Prodigy's lr=1.0)."""
    if value == 0:
        return "0"
    if 1e-2 <= abs(value) < 1e3:
        return f"{value:.4g}"
    exponent = math.floor(math.log10(abs(value)))
    mantissa = round(value / 10**exponent, 3)
    if abs(mantissa) >= 10:  # 9.9996e-5 rounds up to 10e-5
        mantissa, exponent = round(mantissa / 10, 3), exponent + 1
    return f"{mantissa:g}e{exponent}"


def settings_text(settings: dict, label: str = "") -> str:
    """The settings that shape a curve: no step count (the title says it), no zero warmup, the
    restart controls only where they differ from plain restarts, none the label already says."""
    shown = []
    for key, value in settings.items():
        if key in NOT_SHAPING or (key == "num_warmup_steps" and not value) or f"{key}=" in label:
            continue
        if PLAIN.get(key, object()) == value:
            continue
        shown.append(f"{key}={lr_text(value) if key.endswith('lr') and isinstance(value, float) else value}")
    return ", ".join(shown)


def curve_label(schedule: dict) -> str:
    settings = settings_text(schedule.get("settings", {}), schedule["label"])
    return f"{schedule['label']}: {settings}" if settings else schedule["label"]


def group_names(result: dict) -> list[str]:
    names = list(result.get("groups") or [])
    lrs = result["lrs"]
    return names if len(names) == len(lrs) else [f"group {i + 1}" for i in range(len(lrs))]


def title_of(result: dict) -> str:
    steps, per_epoch = result["steps"], result.get("steps_per_epoch")
    run = f"{steps} optimizer steps" + (f", {per_epoch} per epoch ({math.ceil(steps / per_epoch)} epochs)" if per_epoch else "")
    if len(result["lrs"]) == 1:
        return f"{run}; base LR {lr_text(result['lrs'][0])}"
    groups = ", ".join(f"{name} {lr_text(lr)}" for name, lr in zip(group_names(result), result["lrs"]))
    return f"{run}; base LR: {groups}"


def figure_of(result: dict, size: str):
    """The matplotlib figure (Agg) of a preview result, ``size`` in pixels as ``WxH``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    width, height = (int(v) for v in size.lower().split("x"))
    groups, lrs = group_names(result), result["lrs"]
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]

    # the legend: one entry per schedule (its colour), then one per param group (its line style)
    entries = [(Line2D([], [], color=colours[i % len(colours)], linewidth=2), curve_label(s)) for i, s in enumerate(result["schedules"])]
    if len(lrs) > 1:
        entries += [
            (Line2D([], [], color="0.25", linestyle=GROUP_STYLES[g % len(GROUP_STYLES)], linewidth=1.6), f"{name} (base LR {lr_text(lr)})")
            for g, (name, lr) in enumerate(zip(groups, lrs))
        ]
    columns = 2 if len(entries) >= 4 and width >= 900 else 1

    figure = plt.figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    grid = figure.add_gridspec(2, 1, height_ratios=[3, 1])
    axes, legend_axes = figure.add_subplot(grid[0]), figure.add_subplot(grid[1])
    legend_axes.axis("off")

    # the first schedule (the one asked for) is drawn last, on top of the ones it is compared with
    for i, schedule in reversed(list(enumerate(result["schedules"]))):
        for g, lr in enumerate(lrs):
            # each group's own multipliers where they differ (the text encoder's schedule, a custom class's absolute LRs)
            multipliers = (schedule.get("group_multipliers") or [schedule["multipliers"]] * len(lrs))[g]
            axes.plot(
                range(len(multipliers)),
                [lr * m for m in multipliers],
                color=colours[i % len(colours)],
                linestyle=GROUP_STYLES[g % len(GROUP_STYLES)],
                linewidth=1.6,
            )
    per_epoch, steps = result.get("steps_per_epoch"), result["steps"]
    xlabel = "optimizer update"
    if per_epoch:
        boundaries = range(per_epoch, steps, per_epoch)
        if len(boundaries) <= MAX_EPOCH_LINES:
            for boundary in boundaries:
                axes.axvline(boundary, color="0.55", linewidth=0.6, alpha=0.45, zorder=0)
            xlabel += f" (light vertical lines: epochs of {per_epoch} updates)"
    axes.set_xlabel(xlabel)
    axes.set_ylabel("learning rate")
    axes.yaxis.set_major_formatter(FuncFormatter(lambda value, _: lr_text(value)))
    axes.set_ylim(bottom=0)
    axes.set_xlim(-0.01 * steps, steps * 1.01)
    axes.grid(axis="y", alpha=0.25)  # vertical lines are the epochs only
    axes.set_title(textwrap.fill(title_of(result), max(30, int(width / 7.5))), fontsize=10)
    fit_legend(figure, grid, legend_axes, entries, columns, width, height)
    return figure


def fit_legend(figure, grid, legend_axes, entries, columns, width, height) -> None:
    """Wrap the legend's labels until it is as wide as the figure at most, then give its row the
    height it takes: measured on the rendered text, not guessed from character counts."""
    import warnings

    # a first guess (~6.5 px a character at 9 pt, the handle ~90 px), corrected by measuring
    chars = max(20, min(max(len(text) for _, text in entries), int((width / columns - 90) / 6.5)))
    for _ in range(8):
        labels = [textwrap.fill(text, chars, subsequent_indent="  ") for _, text in entries]
        legend = legend_axes.legend([h for h, _ in entries], labels, loc="upper center", ncol=columns, frameon=False, fontsize=9, handlelength=3)
        with warnings.catch_warnings():  # a trial layout may not fit yet; the last one does
            warnings.simplefilter("ignore", UserWarning)
            figure.canvas.draw()
        box = legend.get_window_extent()
        if box.width <= width - 8 or chars <= 20:
            break
        chars = max(20, int(chars * (width - 8) / box.width * 0.95))
    legend_px = box.height + 6
    grid.set_height_ratios([max(height - legend_px - 10, 60), legend_px])


def plot(result: dict, path: str, size: str) -> None:
    """Write the PNG of a preview result (see ``figure_of``)."""
    figure = figure_of(result, size)  # first: it selects the Agg backend before pyplot loads
    import matplotlib.pyplot as plt

    figure.savefig(path, dpi=DPI)
    plt.close(figure)
