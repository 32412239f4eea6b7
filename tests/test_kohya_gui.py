"""The kohya_ss GUI host (``sdsched_plugin.hosts.kohya_gui``).

Pure parts in this Python (no gradio here): the floor <-> extra-arguments text, the curve of the
GUI's fields and its SVG. The GUI itself in venvs of the GUI's Gradio releases (``.venv-gui5``,
``.venv-gui6`` in the checkout, made once when missing): the real ``BasicTraining`` of each
kohya_ss layout (stand-ins under tests/standin_kohya_gui, or a real checkout with
``KOHYA_SS_DIR=/path/to/kohya_ss KOHYA_GUI_PYTHON=/path/to/its/venv/bin/python``) is served on
127.0.0.1, its /config read and its API called as the page calls it; then headless Chromium uses it.
"""

import fcntl
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from argparse import Namespace
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import toml
from conftest import PROCESS_MARK, REPO, SESSION_MARK, TESTS, Run, end_processes

from sdsched_plugin.hosts import kohya_gui, svg
from sdsched_plugin.schedule import arguments, options

STANDINS = TESTS / "standin_kohya_gui"
APP, BROWSE = TESTS / "gui" / "app.py", TESTS / "gui" / "browse.py"
OWN = ["cosine_floor", "cosine_with_restarts_floor", "linear_floor", "polynomial_floor", "rex", "rex_floor"]
# The Gradio the GUI pins: v25.0 - v26.0 (5.34) and master (6.17); requests: gradio 5.34 imports it undeclared
GUI_VENVS = {
    "5": ["gradio==5.34.2", "requests", "toml", "playwright"],
    "6": ["gradio==6.17.3", "gradio-client==2.5.0", "toml"],
}
KOHYA_SS_DIR = Path(os.environ["KOHYA_SS_DIR"]).resolve() if os.environ.get("KOHYA_SS_DIR") else None
CHROMIUM = Path("/usr/bin/chromium")


# ---------------------------------------------------------------- pure: the floor and the curve


@pytest.mark.parametrize(
    "text, floor, written",
    [
        ("", 0.5, "min_value=0.5"),
        ("decay_type=cosine min_value=0.5", 0.3, "decay_type=cosine min_value=0.3"),
        ('"min_value=0.5" cycle_decay=0.8', None, "cycle_decay=0.8"),
        ("cycle_decay=0.8 min_value=0.5", 0, "cycle_decay=0.8"),  # gradio shows an empty field as 0
    ],
)
def test_the_floor_is_written_into_the_extra_arguments_and_read_back(text, floor, written):
    assert kohya_gui.with_floor(text, floor) == written
    assert kohya_gui.floor_of(written) == (floor or None)


def test_the_last_min_value_counts_and_a_bad_one_is_no_floor():
    assert kohya_gui.floor_of("min_value=0.2 x=1 min_value=0.4") == 0.4
    assert kohya_gui.floor_of("min_value=half") is None


def gui_fields(**changed):
    """BasicTraining's fields as v25 - master start: cosine, 5% warmup, 1600 steps, 1 cycle."""
    fields = {"lr_scheduler": "cosine", "lr_scheduler_args": "", "lr_warmup": 5, "lr_warmup_steps": 0, "epoch": 1,
              "max_train_epochs": 0, "max_train_steps": 1600, "lr_scheduler_num_cycles": 1, "lr_scheduler_power": 1.0,
              "learning_rate": 1e-4, "optimizer": "AdamW8bit"}
    return {**fields, **changed}


def test_the_plot_follows_the_fields_as_the_gui_writes_them():
    schedule = kohya_gui.schedule_of(gui_fields(lr_scheduler="cosine_with_restarts_floor", lr_scheduler_args="min_value=0.5", lr_scheduler_num_cycles=2))
    assert (schedule["steps"], schedule["warmup"], schedule["floor"]) == (1600, 80, 0.5)
    values = dict(schedule["points"])
    assert values[0] == 0 and values[80] == 1.0 and schedule["points"][-1][1] == pytest.approx(0.5, abs=1e-4)
    # the second cycle restarts at the peak, halfway through the decay
    assert max(m for step, m in schedule["points"] if 850 <= step <= 860) == pytest.approx(1.0, abs=1e-3)
    html = svg.schedule_html(schedule)
    assert "<svg" in html and "floor 0.5" in html and "stroke-dasharray" in html


def test_an_empty_cycles_field_restarts_every_epoch_as_the_gui_writes_it():
    args = kohya_gui.training_args(gui_fields(lr_scheduler_num_cycles=None, epoch=4), 1600, 4)
    assert args.lr_scheduler_num_cycles == 4 and args.lr_warmup_steps == 0.05


def test_without_a_step_count_the_run_is_drawn_as_fractions_with_the_epochs_marked():
    schedule = kohya_gui.schedule_of(gui_fields(max_train_steps=0, epoch=4))
    assert schedule["nominal"] and schedule["steps"] == 1000
    assert [step for step, _ in svg._epoch_marks(schedule)] == [250, 500, 750]
    assert "the run as a fraction" in svg.caption(schedule)


def test_a_known_epoch_length_marks_whole_epochs():
    schedule = kohya_gui.schedule_of(gui_fields(max_train_steps=0, max_train_epochs=3, steps_per_epoch=120))
    assert schedule["steps"] == 360 and [step for step, _ in svg._epoch_marks(schedule)] == [120, 240]
    cut = kohya_gui.schedule_of(gui_fields(max_train_steps=300, steps_per_epoch=120))  # max train steps ends epoch 3 early
    assert [step for step, _ in svg._epoch_marks(cut)] == [120, 240]


def test_the_steps_of_an_epoch_are_counted_from_the_image_folder_as_the_gui_counts(tmp_path):
    for folder, images in (("10_cat", ["a.png", "b.PNG", "c.jpg", "notes.txt"]), ("5_dog", ["d.webp", "e.jpeg"]), ("misc", ["f.png"])):
        (tmp_path / folder).mkdir()
        for image in images:
            (tmp_path / folder / image).write_bytes(b"")
    fields = gui_fields(max_train_steps=0, max_train_epochs=2, train_data_dir=str(tmp_path), train_batch_size=2)
    assert kohya_gui.folder_steps(fields) == 20  # (10 x 3 + 5 x 2) / 2; "misc" has no repeats
    assert kohya_gui.folder_steps({**fields, "reg_data_dir": "/reg"}) == 40  # the GUI doubles with reg images
    schedule = kohya_gui.schedule_of(fields)
    assert schedule["steps"] == 40 and schedule["per_epoch"] == 20 and "≈20 per epoch" in svg.caption(schedule)
    assert kohya_gui.folder_steps({**fields, "train_data_dir": str(tmp_path / "absent")}) is None


@pytest.mark.parametrize(
    "name", ["constant_with_warmup", "cosine", "cosine_with_restarts", "linear", "polynomial", "cosine_with_min_lr", "inverse_sqrt", "warmup_stable_decay", *OWN]
)
def test_every_name_of_the_menu_is_drawn(name):
    # the GUI has no field for cosine_with_min_lr's floor: its extra arguments carry it
    extra = "min_value=0.3" if name in OWN else "min_lr=1e-6" if name == "cosine_with_min_lr" else ""
    schedule = kohya_gui.schedule_of(gui_fields(lr_scheduler=name, lr_scheduler_args=extra))
    assert "note" not in schedule, schedule.get("note")
    assert len(schedule["points"]) > 100 and all(0 <= m <= 1.0 for _, m in schedule["points"])


def test_names_without_a_curve_say_why_instead():
    assert "optimizer sets the LR" in kohya_gui.schedule_of(gui_fields(lr_scheduler="adafactor", optimizer="Adafactor"))["note"]
    assert "Adafactor" in kohya_gui.schedule_of(gui_fields(lr_scheduler="adafactor"))["note"]  # sd-scripts refuses it
    assert "step_rules" in kohya_gui.schedule_of(gui_fields(lr_scheduler="piecewise_constant"))["note"]


def test_a_floored_name_without_a_floor_names_the_gui_field():
    note = kohya_gui.schedule_of(gui_fields(lr_scheduler="cosine_floor"))["note"]
    assert "Min LR (floor)" in note and "LR Scheduler" in note
    with pytest.raises(options.OptionError, match=r"Min LR \(floor\)"):  # training's early check says the same
        arguments.read_request(Namespace(lr_scheduler="cosine_floor", lr_scheduler_min_value=None, lr_scheduler_args=[], lr_scheduler_type=""))


def test_the_plot_never_raises():
    for fields in ({"max_train_steps": object()}, {"lr_scheduler_power": "abc", "max_train_steps": -5}, {"lr_scheduler": None}):
        assert 'class="sdsched-plot"' in kohya_gui.plot_html(fields)


def test_only_kohya_ss_own_module_is_touched(tmp_path, monkeypatch):
    gradio = type(sys)("gradio")
    monkeypatch.setitem(sys.modules, "gradio", gradio)
    home = tmp_path / "kohya_ss"
    (home / "kohya_gui").mkdir(parents=True)
    module = type(sys)("kohya_gui.class_basic_training")
    module.__file__, module.gr = str(home / "kohya_gui" / "class_basic_training.py"), gradio
    assert "not in a kohya_ss folder" in kohya_gui.why_not_real(module)  # a kohya_gui package of some other program
    (home / ".release").write_text("v25.2.2\n")
    assert kohya_gui.why_not_real(module) is None and kohya_gui.gui_version(kohya_gui.gui_root(module)) == "v25.2.2"
    module.gr = type(sys)("gr")
    assert "gradio" in kohya_gui.why_not_real(module)
    assert not kohya_gui.activate(module)  # refused with one line, nothing patched


def test_the_gui_host_imports_neither_gradio_nor_torch():
    code = "import sys, sdsched_plugin.hosts.kohya_gui; print(sorted(m for m in ('gradio', 'torch', 'diffusers') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------- the GUI's Gradio venvs


def make_gui_venv(version: str) -> Path:
    """``.venv-gui<version>`` in the checkout (ignored by git), made once: a later run reuses it."""
    venv = REPO / f".venv-gui{version}"
    python, ready = venv / "bin" / "python", venv / ".sdsched-ready"
    if not ready.is_file():
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *GUI_VENVS[version]], check=True)
        ready.write_text("\n".join(GUI_VENVS[version]) + "\n")
    return python


def checkout_digest() -> str:
    """What the wheel is built from: a venv that has this digest has this checkout's plugin."""
    files = [REPO / "pyproject.toml", REPO / "sdsched_plugin.pth", REPO / "_sdsched_plugin_boot.py", *sorted((REPO / "sdsched_plugin").rglob("*.py"))]
    return hashlib.sha256(b"".join(path.read_bytes() for path in files)).hexdigest()


def install_plugin(python: Path, wheel: Path, digest: str) -> None:
    """This checkout's wheel into a GUI venv, unless it is there already: another test worker
    may be serving from that venv right now, and a reinstall under it would break its imports."""
    marker = python.parent.parent / ".sdsched-plugin-digest"
    if marker.is_file() and marker.read_text() == digest:
        return
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--force-reinstall", "--no-index", str(wheel)], check=True)
    marker.write_text(digest)


@pytest.fixture(scope="session")
def gui_pythons(plugin_wheel) -> dict:
    """Gradio version -> the Python of its venv, with this checkout's wheel installed (the GUI's
    own venv gets the plugin the same way). With KOHYA_GUI_PYTHON, that one venv alone. Test
    workers (pytest-xdist) each run this: a lock file makes the first one build, the others wait."""
    with open(REPO / ".venv-gui.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if os.environ.get("KOHYA_GUI_PYTHON"):
            pythons = {"real": Path(os.environ["KOHYA_GUI_PYTHON"])}
        else:
            with ThreadPoolExecutor(len(GUI_VENVS)) as pool:  # two pip installs at once: mostly waiting on downloads
                pythons = dict(zip(GUI_VENVS, pool.map(make_gui_venv, GUI_VENVS)))
        digest = checkout_digest()
        for python in pythons.values():
            install_plugin(python, plugin_wheel, digest)
    return pythons


def layouts():
    """(Gradio, kohya_ss folder) pairs: every stand-in layout under Gradio 5, the newest under 6 too.
    v23.1's layout is v24.1's with v23.0's text boxes: both of those are here (the real one was
    checked with KOHYA_SS_DIR)."""
    if KOHYA_SS_DIR is not None:
        return [pytest.param("real", KOHYA_SS_DIR, id=KOHYA_SS_DIR.name)]
    pairs = [("5", "v23_0"), ("5", "v24_1"), ("5", "v26_0"), ("6", "v26_0")]
    return [pytest.param(version, STANDINS / layout, id=f"gradio{version}-{layout}") for version, layout in pairs]


def check_gui(python: Path, folder: Path, out: Path, **env) -> dict:
    process = Run([str(python), str(APP), str(folder), str(out), "--check"], env={**os.environ, **env}).finish(300)
    reports = [line[len("REPORT ") :] for line in process.stdout.splitlines() if line.startswith("REPORT ")]
    assert reports, process.stderr[-3000:]
    return {**json.loads(reports[0]), "stderr": process.stderr}


@pytest.mark.parametrize("version, folder", layouts())
def test_the_served_menu_offers_and_accepts_the_floored_names(gui_pythons, version, folder, tmp_path):
    report = check_gui(gui_pythons[version], folder, tmp_path)
    menu = report["menus"][0]
    assert menu[-len(OWN) :] == OWN and menu.index("cosine_with_restarts") < menu.index("cosine_floor")  # after the stock ones
    assert [f["label"] for f in report["floor"]] == ["Min LR (floor)"] and report["floor"][0]["maximum"] == 1
    order = report["order"]  # the page's blocks, in the order they are built
    assert order.index("Min LR (floor)") > order.index("LR Scheduler") and "<svg" in report["plot"][0] and "cosine" in report["plot"][0]
    written = toml.loads(report["floored"]["ok"])  # the server took the name from the menu: no "not in the list of choices"
    assert written["lr_scheduler"] == "cosine_with_restarts_floor" and written["lr_scheduler_args"] == ["min_value=0.5"]
    if int(report["gradio"].split(".")[0]) >= 5:  # Gradio 5 on refuses a name outside the menu: the check above can fail
        assert "not in the list of choices" in report["unknown"]["error"]
    assert report["floor_to_args"] == {"ok": "decay_type=cosine min_value=0.3"}
    assert report["args_to_floor"] == {"ok": 0.25}
    if (folder / "kohya_gui" / "leco_gui.py").is_file() and KOHYA_SS_DIR is None:
        assert report["menus"][1][-len(OWN) :] == OWN  # v26's LECO tab builds a menu of its own
    assert "sdsched-plugin" not in report["stderr"]  # nothing to say about a layout it knows


def gradio5(gui_pythons) -> Path:
    if "5" not in gui_pythons:
        pytest.skip("a Gradio 5 venv (set by the suite, not by KOHYA_GUI_PYTHON)")
    return gui_pythons["5"]


def changed_layout(tmp_path: Path, old: str, new: str) -> Path:
    """The v25 - master stand-in with one thing changed, as a future release "v99.0.0"."""
    folder = tmp_path / "kohya_ss"
    shutil.copytree(STANDINS / "v26_0", folder)
    (folder / ".release").write_text("v99.0.0\n")
    module = folder / "kohya_gui" / "class_basic_training.py"
    module.write_text(module.read_text().replace(old, new))
    return folder


def test_with_the_off_switch_the_gui_is_as_it_was(gui_pythons, tmp_path):
    report = check_gui(gradio5(gui_pythons), STANDINS / "v26_0", tmp_path, SDSCHED_PLUGIN_DISABLE="1")
    assert not set(OWN) & set(report["menus"][0]) and report["floor"] == [] and report["plot"] == []
    assert "cosine_with_restarts_floor is not in the list of choices" in report["floored"]["error"]


def test_an_unknown_layout_starts_unchanged_with_one_line(gui_pythons, tmp_path):
    folder = changed_layout(tmp_path, 'label="LR scheduler extra arguments"', 'label="Scheduler arguments"')
    report = check_gui(gradio5(gui_pythons), folder, tmp_path / "out")
    assert not set(OWN) & set(report["menus"][0]) and report["floor"] == []
    lines = [line for line in report["stderr"].splitlines() if "sdsched-plugin" in line]
    assert len(lines) == 1 and "kohya_ss GUI v99.0.0" in lines[0] and "sdsched doctor" in lines[0] and "'Scheduler arguments'" in lines[0]


def test_doctor_says_whether_the_gui_is_patched_and_why_not(gui_pythons, tmp_path):
    unknown = changed_layout(tmp_path, 'label="LR Scheduler"', 'label="Scheduler"')
    doctor = [str(gradio5(gui_pythons)), "-m", "sdsched_plugin.cli", "doctor"]
    runs = {folder.name: Run(doctor, env={**os.environ, "KOHYA_SS_DIR": str(folder)}, cwd=tmp_path) for folder in (STANDINS / "v26_0", unknown)}
    known, changed = (runs[name].finish(600).stdout for name in ("v26_0", "kohya_ss"))
    line = next(line for line in known.splitlines() if "kohya_ss GUI" in line)
    assert line.startswith("[OK]") and "[v26.0.0, Gradio 5.34.2]" in line and "cosine_with_restarts_floor" in line
    lines = changed.splitlines()
    at = next(i for i, line in enumerate(lines) if "kohya_ss GUI" in line)
    assert lines[at].startswith("[NG]") and "NOT patched" in lines[at] and "v99.0.0" in lines[at]
    assert "'Scheduler', not 'LR Scheduler'" in lines[at + 1] and lines[at + 1].lstrip().startswith("->")


# ---------------------------------------------------------------- in a browser


@pytest.fixture
def served_gui(gui_pythons, tmp_path):
    """The v25 - master section served on 127.0.0.1 by Gradio 5; (url, TOML folder). Ended after the test."""
    python = gui_pythons.get("5") or gui_pythons.get("real")
    folder = KOHYA_SS_DIR or STANDINS / "v26_0"
    out, log = tmp_path / "toml", (tmp_path / "server.log").open("w")
    mark = f"{SESSION_MARK}.gui"
    server = subprocess.Popen(
        [str(python), str(APP), str(folder), str(out), "--serve"],
        stdout=subprocess.PIPE, stderr=log, text=True, env={**os.environ, PROCESS_MARK: mark}, start_new_session=True,
    )
    try:
        line = server.stdout.readline()
        assert line.startswith("READY "), (tmp_path / "server.log").read_text()[-3000:]
        yield line.split()[1], out
    finally:
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
        server.wait()
        end_processes(mark)
        log.close()


def test_in_chromium_a_floored_name_and_a_floor_reach_the_toml(gui_pythons, served_gui, tmp_path):
    if not CHROMIUM.is_file():
        if os.environ.get("CI"):
            pytest.fail(".ci/run installs Debian's chromium; it is missing")
        pytest.skip("needs /usr/bin/chromium (apt-get install chromium)")
    url, out = served_gui
    python = gui_pythons.get("5") or gui_pythons.get("real")
    if "real" in gui_pythons and subprocess.run([str(python), "-c", "import playwright"], check=False).returncode:
        pytest.skip("KOHYA_GUI_PYTHON has no playwright (pip install playwright there; Gradio 5 or 6)")
    shots = tmp_path / "gui"
    process = Run([str(python), str(BROWSE), url, str(shots)]).finish(300)
    lines = [line[len("BROWSED ") :] for line in process.stdout.splitlines() if line.startswith("BROWSED ")]
    assert lines, process.stderr[-3000:]
    seen = json.loads(lines[0])
    assert seen["menu"] == "cosine_with_restarts_floor" and seen["extra_arguments"] == "min_value=0.5"
    assert "floor 0.5" in seen["caption"] and "4 epoch" in seen["caption"]
    written = [toml.loads(path.read_text()) for path in out.glob("config_lora-*.toml")]
    assert written == [toml.loads(seen["toml"])]
    assert written[0]["lr_scheduler"] == "cosine_with_restarts_floor" and written[0]["lr_scheduler_args"] == ["min_value=0.5"]
    assert written[0]["lr_scheduler_num_cycles"] == 2
    for name in ("menu", "plot"):
        assert (tmp_path / f"gui-{name}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
