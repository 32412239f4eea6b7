"""The preview's plot: the size asked for, the LR written as LRs are written, every param group
drawn, every curve labelled with its settings, the legend and the title inside the picture and
off the curves."""

import struct

import pytest

pytest.importorskip("matplotlib")

from sdsched_plugin.commands import plot  # noqa: E402


def result(groups=("text_encoder", "unet"), lrs=(5e-5, 1e-4), steps=200, per_epoch=50):
    cosine = [0.5 * (1 + __import__("math").cos(__import__("math").pi * k / steps)) for k in range(steps)]
    floored = [0.3 + 0.7 * m for m in cosine]
    return {
        "steps": steps,
        "steps_per_epoch": per_epoch,
        "lrs": list(lrs),
        **({"groups": list(groups)} if groups is not None else {}),
        "schedules": [
            {"label": "cosine_with_restarts_floor", "settings": {"name": "cosine_with_restarts_floor", "num_warmup_steps": 0, "num_cycles": 1,
                                                                  "floor_mode": "clamp", "cycle_mul": 1.0, "min_value": 0.3, "num_training_steps": steps},
             "multipliers": floored},
            {"label": "cosine", "settings": {"name": "cosine", "num_warmup_steps": 0, "num_training_steps": steps}, "multipliers": cosine},
        ],
    }  # fmt: skip


@pytest.mark.parametrize("value, text", [(1e-4, "1e-4"), (5e-5, "5e-5"), (2.5e-5, "2.5e-5"), (7.5e-6, "7.5e-6"), (0.0, "0"),
                                         (1.0, "1"), (0.5, "0.5"), (9.99996e-5, "1e-4"), (1.2e-3, "1.2e-3")])  # fmt: skip
def test_lr_text_is_the_notation_lrs_are_written_in(value, text):
    assert plot.lr_text(value) == text


def test_the_png_has_the_size_asked_for(tmp_path):
    path = tmp_path / "p.png"
    plot.plot(result(), str(path), "640x360")
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", header[16:24]) == (640, 360)


def test_y_tick_labels_are_in_lr_notation():
    figure = plot.figure_of(result(), "1000x450")
    figure.canvas.draw()
    axes = figure.axes[0]
    labels = [tick.get_text() for tick in axes.get_yticklabels() if tick.get_text()]
    assert labels[0] == "0" and "1e-4" in labels and "2e-5" in labels
    assert not any(label.startswith("0.0") for label in labels)  # never 0.00010
    formatter = axes.yaxis.get_major_formatter()
    assert formatter(1e-4, 0) == "1e-4" and formatter(5e-5, 0) == "5e-5"


def test_every_param_group_is_drawn_in_its_own_style_and_named():
    figure = plot.figure_of(result(), "1000x450")
    axes = figure.axes[0]
    curves = [line for line in axes.get_lines() if len(line.get_xdata()) == 200]
    assert len(curves) == 2 * 2  # two schedules x two param groups
    assert {line.get_linestyle() for line in curves} == {"-", "--"}
    peaks = sorted({round(max(line.get_ydata()), 12) for line in curves})
    assert peaks == [5e-5, 1e-4]
    texts = [text.get_text() for text in figure.axes[1].get_legend().get_texts()]
    assert "text_encoder (base LR 5e-5)" in texts and "unet (base LR 1e-4)" in texts


def test_each_curve_is_labelled_with_the_settings_that_shape_it():
    figure = plot.figure_of(result(groups=None, lrs=(1e-4,)), "1000x450")
    texts = [text.get_text().replace("\n", " ") for text in figure.axes[1].get_legend().get_texts()]
    assert texts[0].startswith("cosine_with_restarts_floor: ")
    assert "floor_mode=clamp" in texts[0] and "min_value=0.3" in texts[0] and "num_cycles=1" in texts[0]
    assert "cycle_mul" not in texts[0] and "num_training_steps" not in texts[0]  # plain value / said by the title
    assert texts[1] == "cosine"
    assert "group 1" not in figure.axes[0].get_title() and "base LR 1e-4" in figure.axes[0].get_title()


@pytest.mark.parametrize("size", ["1000x450", "600x400"])
def test_legend_and_title_stay_inside_the_picture_and_off_the_curves(size):
    long = result()
    long["schedules"][0]["label"] = "cosine_with_restarts_floor:cycle_decay=0.8:cycle_mul=1.5:restart_warmup_steps=0.1"
    figure = plot.figure_of(long, size)
    figure.canvas.draw()
    width, height = (int(v) for v in size.split("x"))
    axes, legend = figure.axes[0], figure.axes[1].get_legend()
    renderer = figure.canvas.get_renderer()
    for box in (legend.get_window_extent(renderer), axes.title.get_window_extent(renderer)):
        assert box.x0 >= 0 and box.y0 >= 0 and box.x1 <= width and box.y1 <= height
    assert legend.get_window_extent(renderer).y1 <= axes.get_window_extent(renderer).y0  # under the plot


def test_epoch_boundaries_are_light_vertical_lines():
    figure = plot.figure_of(result(), "1000x450")
    axes = figure.axes[0]
    vertical = [line for line in axes.get_lines() if len(set(line.get_xdata())) == 1]
    assert sorted(line.get_xdata()[0] for line in vertical) == [50, 100, 150]
    assert all(line.get_alpha() < 1 for line in vertical)
