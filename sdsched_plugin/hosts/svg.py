"""A schedule as a small inline SVG, for the kohya_ss GUI's plot under its scheduler fields.

One job: draw ``(step, multiplier)`` points with the warmup shaded, the epoch boundaries as light
vertical lines and the floor as a dashed line, in HTML that any gradio ``HTML`` component shows
(3.50 to 6.x). Standard library only: the GUI must not pay for matplotlib at start, and the
picture is redrawn on every change of a field.
"""

from __future__ import annotations

import math
from html import escape

WIDTH, HEIGHT = 640, 170
LEFT, RIGHT, TOP, BOTTOM = 34, 8, 8, 22  # room for the axis labels
LINE, SHADE, GRID, TEXT, FLOOR = "#f97316", "rgba(148,163,184,0.25)", "rgba(148,163,184,0.55)", "#64748b", "#0ea5e9"
MAX_EPOCH_LABELS = 12


def note_html(text: str) -> str:
    """A line in place of the plot (no curve to draw, or why not)."""
    return f'<div class="sdsched-plot" style="font-size:0.85em;color:{TEXT};padding:4px 0">{escape(text)}</div>'


def _x(step: float, steps: int) -> float:
    return LEFT + (WIDTH - LEFT - RIGHT) * step / max(1, steps)


def _y(multiplier: float, top: float) -> float:
    return TOP + (HEIGHT - TOP - BOTTOM) * (1 - multiplier / top)


def _epoch_marks(schedule: dict) -> list[tuple[float, str]]:
    """(step, label) of each epoch boundary: whole epochs of a known length, else even shares."""
    steps, epochs, per_epoch = schedule["steps"], schedule["epochs"], schedule.get("per_epoch")
    size = per_epoch or steps / max(1, epochs)
    count = math.ceil(steps / size)  # the last epoch may be cut short by max train steps
    every = max(1, -(-count // MAX_EPOCH_LABELS))
    return [(k * size, str(k) if k % every == 0 else "") for k in range(1, count)]


def caption(schedule: dict) -> str:
    """One line under the plot: the schedule, the run's length, warmup, floor and the end value."""
    steps, per_epoch = schedule["steps"], schedule.get("per_epoch")
    if schedule.get("nominal"):
        run = f"the run as a fraction, {schedule['epochs']} epoch(s)"
    elif per_epoch:
        run = f"{steps} steps, ≈{per_epoch} per epoch from the image folder"
    else:
        run = f"{steps} steps, {schedule['epochs']} epoch(s)"
    parts = [schedule["label"], run]
    if schedule["warmup"]:
        parts.append(f"warmup {schedule['warmup']} steps")
    if schedule.get("floor") is not None:
        parts.append(f"floor {schedule['floor']:g}")
    points = schedule["points"]
    parts.append(f"ends at {points[-1][1]:.3g}×, mean {sum(m for _, m in points) / len(points):.2f}×")
    return " · ".join(parts)


def schedule_html(schedule: dict) -> str:
    """The SVG (or the note) for ``hosts.kohya_gui.schedule_of``'s result."""
    if "note" in schedule:
        return note_html(schedule["note"])
    steps, points = schedule["steps"], schedule["points"]
    top = max(1.0, max(m for _, m in points))
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" style="max-width:{WIDTH}px"'
            f' role="img" aria-label="{escape(caption(schedule))}">'
        )
    ]
    if schedule["warmup"]:
        x0, x1 = _x(0, steps), _x(schedule["warmup"], steps)
        parts.append(f'<rect x="{x0:.1f}" y="{TOP}" width="{x1 - x0:.1f}" height="{HEIGHT - TOP - BOTTOM}" fill="{SHADE}"/>')
        parts.append(f'<text x="{x0 + 2:.1f}" y="{TOP + 10}" font-size="9" fill="{TEXT}">warmup</text>')
    for step, label in _epoch_marks(schedule):
        x = _x(step, steps)
        parts.append(f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{HEIGHT - BOTTOM}" stroke="{GRID}" stroke-width="1"/>')
        if label:
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 10}" font-size="9" fill="{TEXT}" text-anchor="middle">{label}</text>')
    for value in (0.0, 0.5, 1.0):
        y = _y(value, top)
        parts.append(f'<text x="{LEFT - 4}" y="{y + 3:.1f}" font-size="9" fill="{TEXT}" text-anchor="end">{value:g}</text>')
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="{GRID}" stroke-width="0.5"/>')
    if schedule.get("floor") is not None:
        y = _y(schedule["floor"], top)
        parts.append(f'<line x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}" stroke="{FLOOR}" stroke-dasharray="4 3"/>')
    # steps, not slopes: update k runs at its multiplier until update k + 1, and a restart is a jump
    ends = [step for step, _ in points[1:]] + [steps]
    line = " ".join(f"{_x(step, steps):.1f},{_y(m, top):.1f} {_x(end, steps):.1f},{_y(m, top):.1f}" for (step, m), end in zip(points, ends))
    parts.append(f'<polyline points="{line}" fill="none" stroke="{LINE}" stroke-width="2"/>')
    parts.append(f'<text x="{WIDTH - RIGHT}" y="{HEIGHT - 10}" font-size="9" fill="{TEXT}" text-anchor="end">epochs ›</text>')
    parts.append("</svg>")
    return (
        f'<div class="sdsched-plot">{"".join(parts)}'
        f'<div style="font-size:0.8em;color:{TEXT}">LR multiplier · {escape(caption(schedule))}</div></div>'
    )
