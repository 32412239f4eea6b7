"""The kohya_ss GUI host: the plugin's schedules in the GUI's "LR Scheduler" menu, a "Min LR
(floor)" field beside it, and a plot of the schedule under the scheduler fields.

One job: patch bmaltais/kohya_ss' ``kohya_gui.class_basic_training.BasicTraining`` (the LoRA,
Dreambooth, Finetune and Textual Inversion tabs all build it) and the scheduler menus of the
LECO and Anima LLLite tabs (v26), right after the GUI imports those modules. The GUI runs in the
venv of sd-scripts, so the names it offers train through its own TOML or command line, and the
floor travels as ``min_value=...`` in the "LR scheduler extra arguments" box, which the GUI
already saves with its config and hands to sd-scripts as ``--lr_scheduler_args``.

Everything is checked before anything is touched: a layout this module does not recognise
leaves the GUI as it is, with one log line naming the GUI version and ``sdsched doctor``.
gradio is imported only inside the hooks (the GUI has imported it before these modules; the
startup hook never does). Imports nothing from the commands layer and no torch: the plot's curve
comes from ``schedule.requested``, pure, and is drawn by ``hosts.svg``.
"""

from __future__ import annotations

import dataclasses
import argparse
import logging
import math
import os
import sys
from pathlib import Path

from ..schedule import arguments, options, registry
from . import patching

logger = logging.getLogger("sdsched_plugin")

MODULE_NAME = "kohya_gui.class_basic_training"
# v26.0.0 on: tabs that build their own short scheduler menu, in one function each
TAB_MODULES = {"kohya_gui.leco_gui": "leco_tab", "kohya_gui.anima_lllite_gui": "anima_lllite_tab"}
TAB_PARAMS = ("headless", "config")  # the first parameters of both, v26.0.0 and master
CHECKED = "v23.0.0 – v26.0.0 and master (Gradio 3.50 – 6.17)"
MENU_LABEL = "LR Scheduler"
FLOOR_LABEL = arguments.GUI_FLOOR_LABEL
FLOOR_INFO = "After warmup the LR never falls below this share of it (0.5 = half). Saved as min_value= in LR scheduler extra arguments; 0: no floor"
FLOOR_KEY = "min_value"
# BasicTraining's fields the plugin reads, by attribute: (gradio class, what the GUI calls it);
# None where releases differ (text boxes up to v23.1, numbers from v24; "LR number of cycles" in v23.0)
FIELDS = {
    "lr_scheduler": ("Dropdown", MENU_LABEL),
    "lr_scheduler_args": ("Textbox", "LR scheduler extra arguments"),
    "lr_warmup": ("Slider", "LR warmup (% of total steps)"),
    "lr_scheduler_num_cycles": (None, None),
    "lr_scheduler_power": (None, None),
    "epoch": ("Number", "Epoch"),
    "max_train_epochs": (None, None),
    "max_train_steps": (None, None),
}
# read when the release has them (v25 on)
OPTIONAL_FIELDS = ("lr_warmup_steps", "lr_scheduler_type", "learning_rate")
# the tab's folders, by the start of their labels (v23.0 - master: "Regularisation folder" / "... directory")
FOLDER_LABELS = {"train_data_dir": "Image folder (containing training images subfolders)", "reg_data_dir": "Regularisation "}
NOMINAL_STEPS = 1000  # a run whose length the GUI does not say is drawn over this many steps


# ------------------------------------------------------------------ where and what the GUI is


def gui_root(module) -> Path | None:
    """The kohya_ss folder of the GUI module: where ``kohya_gui.py`` (its launcher) or
    ``.release`` lie next to the ``kohya_gui`` package. None for a ``kohya_gui`` from anywhere else."""
    file = getattr(module, "__file__", None)
    if not file:
        return None
    root = Path(file).resolve().parent.parent
    return root if (root / "kohya_gui.py").is_file() or (root / ".release").is_file() else None


def gui_version(root: Path | None) -> str:
    """The release the GUI says it is (its ``.release`` file), or "unknown"."""
    try:
        return (root / ".release").read_text(encoding="utf-8").strip() or "unknown"
    except (OSError, TypeError):
        return "unknown"


def not_recognised(version: str, why: str) -> str:
    """The one log line of a GUI the plugin leaves as it is."""
    return (
        f"sdsched-plugin: kohya_ss GUI {version}: {why}; the GUI starts unchanged, without the floored schedules in its"
        f" menu (checked: {CHECKED}); run `sdsched doctor` in the kohya_ss folder"
        f" / kohya_ss GUI {version} の画面を認識できないため変更しません。kohya_ss のフォルダで `sdsched doctor` を実行してください"
    )


def why_not_real(module) -> str | None:
    """None when ``module`` is kohya_ss' own GUI module running on the gradio already imported."""
    gradio = sys.modules.get("gradio")
    if gradio is None or getattr(module, "gr", None) is not gradio:
        return "it does not build its controls with gradio"
    if gui_root(module) is None:
        return f"{getattr(module, '__file__', module)} is not in a kohya_ss folder (no kohya_gui.py or .release beside kohya_gui/)"
    return None


# ------------------------------------------------------------------ the menu's names


def menu_names() -> list[str]:
    """The names this plugin adds: every schedule the registry can build (its own, those added
    later, third-party ones that load). A broken third-party one is never offered."""
    return registry.names()


def choice_values(dropdown) -> list:
    """The values of a Dropdown's choices: gradio 4 on keeps (label, value) pairs; 3.x plain values too."""
    return [choice[1] if isinstance(choice, (tuple, list)) else choice for choice in dropdown.choices]


def add_choices(dropdown, names: list[str]) -> list[str]:
    """Append ``names`` missing from the dropdown after its own choices, in the form its
    choices already have. Idempotent; returns the names added."""
    present = set(choice_values(dropdown))
    new = [name for name in names if name not in present]
    pairs = bool(dropdown.choices) and isinstance(dropdown.choices[0], (tuple, list))
    dropdown.choices = [*dropdown.choices, *((name, name) if pairs else name for name in new)]
    return new


def is_menu(block, gradio) -> bool:
    return isinstance(block, gradio.Dropdown) and getattr(block, "label", None) == MENU_LABEL and isinstance(getattr(block, "choices", None), list)


# ------------------------------------------------------------------ the floor <-> extra arguments


def floor_of(text) -> float | None:
    """The floor written in the extra-arguments text (its last ``min_value=``), or None."""
    found = None
    for token in str(text or "").replace('"', " ").replace("'", " ").split():
        key, sep, value = token.partition("=")
        if sep and key == FLOOR_KEY:
            try:
                found = float(value)
            except ValueError:
                found = None
    return found


def with_floor(text, floor) -> str:
    """The extra-arguments text with its ``min_value=`` set to ``floor`` (removed for None or 0):
    every other token kept, in order. The GUI splits this text on spaces for sd-scripts."""
    tokens = [token for token in str(text or "").split() if token.replace('"', "").partition("=")[0] != FLOOR_KEY]
    value = number(floor)
    if value and not math.isnan(value):  # 0 is what gradio shows for an empty field: no floor
        tokens.append(f"{FLOOR_KEY}={value!r}")
    return " ".join(tokens)


# ------------------------------------------------------------------ the curve of the GUI's fields


def number(value, default=None):
    """A GUI field's number: gradio gives float, int, None or (in text boxes) a string."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")  # what the GUI counts in train_model


def folder_steps(values: dict) -> int | None:
    """Steps of one epoch from the tab's image folder, counted as the GUI counts before it
    trains: every ``<repeats>_<name>`` subfolder's images times its repeats, doubled with a
    regularisation folder, over the batch size (no gradient accumulation: that field is built
    after this one). None without a folder to count. sd-scripts counts per bucket: an estimate."""
    folder = str(values.get("train_data_dir") or "").strip()
    if not folder:
        return None
    total = 0
    try:
        for entry in os.scandir(folder):
            repeats, sep, _ = entry.name.partition("_")
            if entry.is_dir() and sep and repeats.isdigit():
                images = sum(1 for f in os.scandir(entry.path) if f.name.lower().endswith(IMAGE_EXTENSIONS))
                total += int(repeats) * images
    except OSError:
        return None
    factor = 2 if str(values.get("reg_data_dir") or "").strip() else 1
    batch = max(1, int(number(values.get("train_batch_size"), 1) or 1))
    return math.ceil(total * factor / batch) or None


def run_of(values: dict) -> tuple[int, int, int | None]:
    """(total steps, epochs, steps per epoch or None) from the GUI's fields, as the GUI counts:
    "Max train steps" when set; else the epochs ("Max train epoch" over "Epoch") times the steps
    of one epoch when known; else a nominal run, drawn as fractions with the epochs marked."""
    epochs = int(number(values.get("max_train_epochs"), 0) or 0) or max(1, int(number(values.get("epoch"), 1) or 1))
    per_epoch = values.get("steps_per_epoch") or folder_steps(values)
    steps = int(number(values.get("max_train_steps"), 0) or 0)
    if steps > 0:
        return steps, epochs, per_epoch
    if per_epoch:
        return per_epoch * epochs, epochs, per_epoch
    per_epoch = max(1, round(NOMINAL_STEPS / epochs))
    return per_epoch * epochs, epochs, None


def training_args(values: dict, total: int, epochs: int) -> argparse.Namespace:
    """What sd-scripts' arguments become from the GUI's fields: the keys and rules of the TOML the
    GUI writes (extra arguments split on spaces, quotes dropped; empty "LR # cycles" -> the
    epochs; the warmup override in steps, else the % as a ratio of the run)."""
    cycles = number(values.get("lr_scheduler_num_cycles"))
    warmup_steps = int(number(values.get("lr_warmup_steps"), 0) or 0)
    warmup = warmup_steps if warmup_steps > 0 else (number(values.get("lr_warmup"), 0) or 0) / 100
    return argparse.Namespace(
        lr_scheduler=str(values.get("lr_scheduler") or "constant"),
        lr_scheduler_type=str(values.get("lr_scheduler_type") or ""),
        lr_scheduler_args=str(values.get("lr_scheduler_args") or "").replace('"', "").split(),
        lr_scheduler_num_cycles=int(cycles) if cycles else epochs,
        lr_scheduler_power=number(values.get("lr_scheduler_power"), 1.0),
        lr_warmup_steps=warmup,
        max_train_steps=total,
        max_train_epochs=None,
        learning_rate=number(values.get("learning_rate"), 1.0) or 1.0,
        lr_scheduler_min_value=None,
        optimizer_type=str(values.get("optimizer") or ""),
        optimizer_args=str(values.get("optimizer_args") or "").split(),
    )


def schedule_of(values: dict) -> dict:
    """What the plot shows for the GUI's fields: ``{"label", "steps", "epochs", "per_epoch",
    "warmup", "floor", "points": [(step, multiplier)]}``, or ``{"note": text}`` when there is no
    curve to draw (the optimizer sets the LR, or a value training would refuse: its message)."""
    from ..schedule import requested

    total, epochs, per_epoch = run_of(values)
    args = training_args(values, total, epochs)
    try:
        request = arguments.read_schedule(args, pure=True)
        if request.kind == arguments.OPTIMIZER:
            return {"note": request.note or f"{request.label}: the optimizer sets the LR / オプティマイザーが学習率を決めます"}
        label = request.label
        if per_epoch and request.updates_per_epoch is None:  # --lr_scheduler_cycle_epochs in the extra arguments
            request = dataclasses.replace(request, updates_per_epoch=per_epoch)
        settings, curve = requested.curve_of(request, 1, total)
    except (options.OptionError, registry.RegistryError, ValueError) as error:
        return {"note": str(error)}
    every = max(1, total // 600)  # enough points for a line a few hundred pixels wide
    steps = sorted(set(range(0, total, every)) | {total - 1})
    return {
        "label": label,
        "steps": total,
        "epochs": epochs,
        "per_epoch": per_epoch,
        "warmup": settings.get("num_warmup_steps", 0) or 0,
        "floor": settings.get("min_value"),
        "nominal": per_epoch is None and not number(values.get("max_train_steps"), 0),
        "points": [(step, float(curve(step))) for step in steps],
    }


def plot_html(values: dict) -> str:
    """The plot for the GUI's fields, as HTML; never raises (the GUI must not fail over it)."""
    from . import svg

    try:
        return svg.schedule_html(schedule_of(values))
    except Exception as error:  # a third-party curve, an odd value: a line, not a broken tab
        return svg.note_html(f"sdsched-plugin: no plot ({type(error).__name__}: {error})")


# ------------------------------------------------------------------ BasicTraining


def layout_problem(training, gradio) -> str | None:
    """None when the built BasicTraining has every field the plugin reads, as the GUI builds it."""
    for attribute, (kind, label) in FIELDS.items():
        block = getattr(training, attribute, None)
        if not isinstance(block, gradio.components.Component):
            return f"BasicTraining has no field {attribute}"
        if kind is not None and type(block).__name__ != kind:
            return f"BasicTraining.{attribute} is a {type(block).__name__}, not a {kind}"
        if label is not None and getattr(block, "label", None) != label:
            return f"BasicTraining.{attribute} is labelled {getattr(block, 'label', None)!r}, not {label!r}"
    if not is_menu(training.lr_scheduler, gradio):
        return "its LR Scheduler menu has no list of choices"
    return None


def place_after(block, anchor) -> None:
    """Move ``block`` right after ``anchor`` (or the ancestor of it) among its parent's children:
    gradio lays blocks out in the order of that list."""
    parent = block.parent
    while anchor is not None and getattr(anchor, "parent", None) is not parent:
        anchor = getattr(anchor, "parent", None)
    if anchor is None or parent is None:
        return
    parent.children.remove(block)
    parent.children.insert(parent.children.index(anchor) + 1, block)


def floor_field(training, gradio):
    """The "Min LR (floor)" number, in the menu's own row right after the menu. Re-entering that
    row (gradio adds new blocks to the block being entered) puts it there; the row's parent is
    what it was, since entering a block sets it to the block entered from."""
    menu = training.lr_scheduler
    row, parent = menu.parent, menu.parent.parent
    with row:
        floor = gradio.Number(
            label=FLOOR_LABEL,
            value=floor_of(training.lr_scheduler_args.value),
            minimum=0,
            maximum=1,
            step=0.05,
            info=FLOOR_INFO,
            interactive=True,
        )
    row.parent = parent
    place_after(floor, menu)
    return floor


def plot_inputs(training) -> dict:
    """Field name -> the component of this BasicTraining that the plot reads."""
    names = [*FIELDS, *OPTIONAL_FIELDS, "optimizer", "optimizer_args", "train_batch_size"]
    found = {name: getattr(training, name, None) for name in names}
    found.update(getattr(training, "sdsched_folders", {}))
    return {name: block for name, block in found.items() if block is not None and hasattr(block, "change")}


def folder_fields(gradio) -> dict:
    """The tab's image and regularisation folders, built before BasicTraining in the LoRA and
    Dreambooth tabs (found by their labels: the last of each built so far is this tab's)."""
    found = {}
    for block in list((getattr(_root_block(gradio), "blocks", None) or {}).values()):
        label = str(getattr(block, "label", "") or "")
        for name, start in FOLDER_LABELS.items():
            if label.startswith(start):
                found[name] = block
    return found


def wire(training, floor, plot, gradio) -> None:
    """The floor writes min_value=... into the extra arguments as it is typed; the extra
    arguments (typed, or loaded with a config) set the floor; every field redraws the plot."""
    text = training.lr_scheduler_args
    typed = getattr(floor, "input", None) or floor.change  # .input: the user's edits, not ours

    def floor_to_text(value, current):
        return with_floor(current, value)

    def text_to_floor(current, shown):
        found = floor_of(current)
        return shown if found == shown else found

    # named, so the round trip can be driven from outside as the page drives it (tests, scripts)
    quiet = {"show_progress": "hidden"}  # no spinner over the fields for a redraw of a few ms
    typed(floor_to_text, inputs=[floor, text], outputs=[text], api_name="sdsched_floor_to_args", **quiet)
    text.change(text_to_floor, inputs=[text, floor], outputs=[floor], api_name="sdsched_args_to_floor", **quiet)
    inputs = plot_inputs(training)
    names = list(inputs)

    def redraw(*values):
        return plot_html(dict(zip(names, values)))

    for block in inputs.values():
        block.change(redraw, inputs=list(inputs.values()), outputs=[plot], api_name=False, **quiet)


def initial_values(training) -> dict:
    return {name: getattr(block, "value", None) for name, block in plot_inputs(training).items()}


def extend_basic_training(training) -> None:
    """Add the names, the floor and the plot to a BasicTraining just built, or leave it as it
    is with one log line when it is not the layout this module knows."""
    gradio = sys.modules["gradio"]
    problem = layout_problem(training, gradio)
    if problem is not None:
        module = sys.modules.get(type(training).__module__)
        logger.warning(not_recognised(gui_version(gui_root(module)), problem))
        return
    training.sdsched_folders = folder_fields(gradio)
    add_choices(training.lr_scheduler, menu_names())
    floor = floor_field(training, gradio)
    plot = gradio.HTML(value=plot_html(initial_values(training)), label="Schedule (sdsched-plugin)")
    place_after(plot, training.lr_scheduler_num_cycles)  # under the scheduler rows (hidden in Finetune: the plot is not)
    wire(training, floor, plot, gradio)
    training.sdsched_floor, training.sdsched_plot = floor, plot


def after_basic_training(original, training, *args, **kwargs):
    """Around BasicTraining.__init__: the GUI's own fields first, then ours; any failure of
    ours is one log line, never a GUI that does not start."""
    result = original(training, *args, **kwargs)
    try:
        extend_basic_training(training)
    except Exception as error:
        module = sys.modules.get(type(training).__module__)
        logger.warning(not_recognised(gui_version(gui_root(module)), f"{type(error).__name__}: {error}"))
    return result


def patches(module) -> list[patching.Patch]:
    # v23.0 builds every field in __init__, later releases in methods __init__ calls: wrapping
    # __init__ (its first two parameters are the same in every release) covers them all.
    owner = getattr(module, "BasicTraining", None)
    return [patching.Patch(owner, "__init__", ("self", "sdxl_checkbox"), after_basic_training, prefix=True)]


def activate(module) -> bool:
    """The startup hook's entry for ``kohya_gui.class_basic_training``."""
    why = why_not_real(module)
    if why is not None:
        logger.warning(not_recognised(gui_version(gui_root(module)), why))
        return False
    if not isinstance(getattr(module, "BasicTraining", None), type):
        logger.warning(not_recognised(gui_version(gui_root(module)), "it has no class BasicTraining"))
        return False
    return patching.install(patches(module), "kohya_ss' BasicTraining", CHECKED)


def is_installed(module=None) -> bool:
    module = module or sys.modules.get(MODULE_NAME)
    return module is not None and isinstance(getattr(module, "BasicTraining", None), type) and patching.is_installed(patches(module))


# ------------------------------------------------------------------ the LECO and Anima LLLite tabs


def after_tab(original, *args, **kwargs):
    """Around a tab function that builds its own scheduler menu: every "LR Scheduler" menu the
    call adds to the page gets the names (the floor goes in that tab's extra-arguments box)."""
    gradio = sys.modules["gradio"]
    root = _root_block(gradio)
    before = set(getattr(root, "blocks", {}) or {})
    result = original(*args, **kwargs)
    try:
        menus = [block for key, block in (getattr(root, "blocks", {}) or {}).items() if key not in before and is_menu(block, gradio)]
        for menu in menus:
            add_choices(menu, menu_names())
    except Exception as error:
        logger.warning(not_recognised(gui_version(None), f"{type(error).__name__}: {error}"))
    return result


def _root_block(gradio):
    """The Blocks being built: gradio.context.Context.root_block in every release we checked."""
    context = getattr(getattr(gradio, "context", None), "Context", None)
    return getattr(context, "root_block", None)


def activate_tab(module) -> bool:
    """The startup hook's entry for the LECO and Anima LLLite tab modules."""
    why = why_not_real(module)
    function = TAB_MODULES.get(module.__name__)
    if why is None and not callable(getattr(module, function or "", None)):
        why = f"it has no function {function}()"
    if why is not None:
        logger.warning(not_recognised(gui_version(gui_root(module)), why))
        return False
    return patching.install([patching.Patch(module, function, TAB_PARAMS, after_tab, prefix=True)], f"kohya_ss' {function}", CHECKED)


# ------------------------------------------------------------------ what sdsched doctor asks


def probe(root: Path) -> dict:
    """Build BasicTraining of the kohya_ss folder ``root`` as a training tab does (no server),
    in a fresh process of the GUI's venv, and say what the plugin did to it and why not:
    ``{"version", "gradio", "file", "hooked", "names", "floor", "plot", "warnings", "error"}``."""
    report: dict = {"version": gui_version(root), "warnings": []}
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: report["warnings"].append(record.getMessage())  # our lines, as the GUI's log shows them
    logger.addHandler(handler)
    try:
        sys.path.insert(0, str(root))
        import gradio

        report["gradio"] = gradio.__version__
        # through the startup hook, as the GUI imports it
        from kohya_gui import class_basic_training as module

        report["file"], report["hooked"] = module.__file__, is_installed(module)
        with gradio.Blocks():
            training = module.BasicTraining(sdxl_checkbox=gradio.Checkbox())
        menu = getattr(training, "lr_scheduler", None)
        present = set(choice_values(menu)) if menu is not None else set()
        report["names"] = [name for name in menu_names() if name in present]
        report["floor"], report["plot"] = hasattr(training, "sdsched_floor"), hasattr(training, "sdsched_plot")
    except Exception as error:
        report["error"] = f"{type(error).__name__}: {error}"
        report["missing"] = getattr(error, "name", None) if isinstance(error, ImportError) else None
    finally:
        logger.removeHandler(handler)
    return report
