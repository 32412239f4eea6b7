"""Stand-in of kohya_ss v23.0.x's kohya_gui/class_basic_training.py (Gradio 3.50), written for the
tests: the same constructor, attribute names, labels and scheduler menu as the real one; every
field built in __init__, the step counts and the cycles in text boxes. Fields the plugin never
reads (buckets, precision, the TE learning rates) are left out."""

import gradio as gr


class BasicTraining:
    def __init__(
        self,
        sdxl_checkbox: gr.Checkbox,
        learning_rate_value="1e-6",
        lr_scheduler_value="constant",
        lr_warmup_value="0",
        finetuning: bool = False,
        dreambooth: bool = False,
    ):
        self.sdxl_checkbox = sdxl_checkbox
        with gr.Row():
            self.train_batch_size = gr.Slider(minimum=1, maximum=64, label="Train batch size", value=1, step=1)
            self.epoch = gr.Number(label="Epoch", value=1, precision=0)
            self.max_train_epochs = gr.Textbox(label="Max train epoch", placeholder="(Optional) Enforce number of epoch")
            self.max_train_steps = gr.Textbox(label="Max train steps", placeholder="(Optional) Enforce number of steps")
        with gr.Row():
            self.lr_scheduler = gr.Dropdown(
                label="LR Scheduler",
                choices=["adafactor", "constant", "constant_with_warmup", "cosine", "cosine_with_restarts", "linear", "polynomial"],
                value=lr_scheduler_value,
            )
            self.optimizer = gr.Dropdown(label="Optimizer", choices=["AdamW", "AdamW8bit", "Adafactor", "Prodigy"], value="AdamW8bit", interactive=True)
        with gr.Row():
            self.lr_scheduler_args = gr.Textbox(label="LR scheduler extra arguments", placeholder='(Optional) eg: "milestones=[1,10,30,50]" "gamma=0.1"')
            self.optimizer_args = gr.Textbox(label="Optimizer extra arguments")
        with gr.Row():
            self.learning_rate = gr.Number(label="Learning rate", value=learning_rate_value, minimum=0, maximum=1)
            self.lr_warmup = gr.Slider(label="LR warmup (% of total steps)", value=lr_warmup_value, minimum=0, maximum=100, step=1)
        with gr.Row(visible=not finetuning):
            self.lr_scheduler_num_cycles = gr.Textbox(label="LR number of cycles", placeholder="(Optional) For Cosine with restart and polynomial only")
            self.lr_scheduler_power = gr.Textbox(label="LR power", placeholder="(Optional) For Cosine with restart and polynomial only")
        with gr.Row(visible=not finetuning):
            self.max_resolution = gr.Textbox(label="Max resolution", value="512,512")
