"""A kohya_ss GUI section for the tests, run by the Python of a Gradio venv: the real
``BasicTraining`` of the kohya_ss folder given (a stand-in layout under tests/standin_kohya_gui,
or a real checkout) in an accordion, v26's LECO tab where the folder has one, and a button that
writes the TOML for sd-scripts with the scheduler keys and rules of kohya_ss' ``train_model``
(v24 on). The plugin is active through its startup hook, as in the GUI's own venv.

    python app.py KOHYA_DIR OUT_DIR --check   # serve, read /config and call it, print one JSON line, stop
    python app.py KOHYA_DIR OUT_DIR --serve   # serve until killed; prints "READY <url>"
"""

import json
import socket
import sys
import time
import urllib.request
from datetime import datetime
from pathlib import Path

KOHYA_DIR, OUT_DIR, MODE = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
sys.path.insert(0, str(KOHYA_DIR))

import gradio as gr  # the GUI imports gradio before its modules, as here
import toml
from kohya_gui.class_basic_training import BasicTraining


def write_toml(lr_scheduler, lr_scheduler_args, cycles, power, lr_warmup, epoch, max_train_steps, learning_rate):
    """The scheduler part of kohya_ss' train_model: the TOML it writes, "" / False / None left out."""
    data = {
        "learning_rate": learning_rate,
        "lr_scheduler": lr_scheduler,
        "lr_scheduler_args": str(lr_scheduler_args).replace('"', "").split(),
        "lr_scheduler_num_cycles": int(float(cycles)) if cycles not in ("", None) else int(epoch),
        "lr_scheduler_power": float(power) if power not in ("", None) else None,
        "lr_warmup_steps": float(lr_warmup) / 100 if lr_warmup else None,
        "max_train_steps": int(float(max_train_steps)) if max_train_steps not in ("", None) else None,
    }
    data = dict(sorted((k, v) for k, v in data.items() if v not in ["", False, None, []]))
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    path = OUT_DIR / f"config_lora-{datetime.now():%Y%m%d-%H%M%S-%f}.toml"
    path.write_text(toml.dumps(data), encoding="utf-8")
    return path.read_text(encoding="utf-8")


with gr.Blocks(title="kohya_ss GUI (test section)") as demo:
    with gr.Accordion("Parameters", open=True):
        sdxl = gr.Checkbox(label="SDXL model", value=False)
        training = BasicTraining(sdxl_checkbox=sdxl, learning_rate_value=1e-4, lr_scheduler_value="cosine", lr_warmup_value=5)
    leco_menus = []
    if (KOHYA_DIR / "kohya_gui" / "leco_gui.py").is_file():
        try:
            from kohya_gui.leco_gui import leco_tab

            with gr.Tab("LECO"):
                found = leco_tab(headless=True)
        except Exception as error:  # a real checkout's tab needs the whole GUI's imports
            print(f"LECO tab not built: {error!r}", file=sys.stderr)
    button = gr.Button("Print training command")
    written = gr.Textbox(label="TOML for sd-scripts", lines=8)
    fields = [training.lr_scheduler, training.lr_scheduler_args, training.lr_scheduler_num_cycles, training.lr_scheduler_power,
              training.lr_warmup, training.epoch, training.max_train_steps, training.learning_rate]
    button.click(write_toml, inputs=fields, outputs=written, api_name="print_command")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def components(config: dict) -> list[dict]:
    return [{"id": c["id"], "type": c.get("type"), **c.get("props", {})} for c in config["components"]]


def check(url: str) -> dict:
    """What the page gets, and what the server says to a floored name and to the floor's round trip."""
    from gradio_client import Client

    config = json.loads(urllib.request.urlopen(url + "/config", timeout=60).read())
    blocks = components(config)
    menus = [b for b in blocks if b.get("label") == "LR Scheduler"]
    report = {
        "gradio": gr.__version__,
        "menus": [[c[1] if isinstance(c, list) else c for c in m.get("choices", [])] for m in menus],
        "floor": [{k: b.get(k) for k in ("label", "info", "minimum", "maximum")} for b in blocks if b.get("label") == "Min LR (floor)"],
        "plot": [b.get("value", "") for b in blocks if b.get("label") == "Schedule (sdsched-plugin)"],
        "order": [b.get("label") for b in blocks if b.get("label") in ("LR Scheduler", "Min LR (floor)", "LR scheduler extra arguments", "LR # cycles", "LR number of cycles", "Schedule (sdsched-plugin)")],
    }
    client = Client(url, verbose=False) if "verbose" in Client.__init__.__code__.co_varnames else Client(url)

    def call(api_name, *args):
        try:
            return {"ok": client.predict(*args, api_name=api_name)}
        except Exception as error:
            return {"error": f"{type(error).__name__}: {error}"}

    report["floored"] = call("/print_command", "cosine_with_restarts_floor", "min_value=0.5", 2, 1, 5, 4, 100, 1e-4)
    report["unknown"] = call("/print_command", "not_a_schedule", "", 2, 1, 5, 4, 100, 1e-4)
    report["floor_to_args"] = call("/sdsched_floor_to_args", 0.3, "decay_type=cosine min_value=0.5")
    report["args_to_floor"] = call("/sdsched_args_to_floor", "foo=1 min_value=0.25", None)
    return report


port = free_port()
url = f"http://127.0.0.1:{port}"
demo.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
try:
    if MODE == "--check":
        print("REPORT " + json.dumps(check(url)), flush=True)
    else:
        print(f"READY {url}", flush=True)
        while True:
            time.sleep(3600)
finally:
    demo.close()
