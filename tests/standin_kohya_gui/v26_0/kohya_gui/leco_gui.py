"""Stand-in of kohya_ss v26.0's kohya_gui/leco_gui.py, written for the tests: ``leco_tab`` builds
its own short "LR Scheduler" menu and "LR Scheduler extra arguments" box inside one function, as
the real tab does (the Anima LLLite tab is built the same way)."""

import gradio as gr


def leco_tab(headless=False, config={}, use_shell_flag: bool = False):
    with gr.Tab("Training"), gr.Column(variant="compact"):
        with gr.Row():
            lr_scheduler = gr.Dropdown(
                label="LR Scheduler",
                choices=["constant", "constant_with_warmup", "cosine", "cosine_with_restarts", "linear", "polynomial"],
                value=config.get("training.lr_scheduler", "constant"),
                interactive=True,
            )
            lr_scheduler_args = gr.Textbox(label="LR Scheduler extra arguments", value=config.get("training.lr_scheduler_args", ""))
    return lr_scheduler, lr_scheduler_args
