"""Stand-in of kohya_ss v23.1.x's kohya_gui/class_basic_training.py (Gradio 4.19), written for the
tests: the same constructor (with ``config``), the fields built by one method each, the same
attribute names, labels and scheduler menu; step counts and cycles still text boxes."""

import gradio as gr


class BasicTraining:
    def __init__(
        self,
        sdxl_checkbox: gr.Checkbox,
        learning_rate_value: float = "1e-6",
        lr_scheduler_value: str = "constant",
        lr_warmup_value: float = "0",
        finetuning: bool = False,
        dreambooth: bool = False,
        config: dict = {},
    ) -> None:
        self.sdxl_checkbox = sdxl_checkbox
        self.learning_rate_value = learning_rate_value
        self.lr_scheduler_value = lr_scheduler_value
        self.lr_warmup_value = lr_warmup_value
        self.finetuning = finetuning
        self.config = config
        self.initialize_ui_components()

    def initialize_ui_components(self) -> None:
        self.init_training_controls()
        self.init_lr_and_optimizer_controls()
        self.init_grad_and_lr_controls()
        self.init_learning_rate_controls()
        self.init_scheduler_controls()

    def init_training_controls(self) -> None:
        with gr.Row():
            self.train_batch_size = gr.Slider(minimum=1, maximum=64, label="Train batch size", value=1, step=1)
            self.epoch = gr.Number(label="Epoch", value=self.config.get("basic.epoch", 1), precision=0)
            self.max_train_epochs = gr.Textbox(label="Max train epoch", placeholder="(Optional) Enforce # epochs", value="")
            self.max_train_steps = gr.Textbox(label="Max train steps", placeholder="(Optional) Enforce # steps", value="")

    def init_lr_and_optimizer_controls(self) -> None:
        with gr.Row():
            self.lr_scheduler = gr.Dropdown(
                label="LR Scheduler",
                choices=["adafactor", "constant", "constant_with_warmup", "cosine", "cosine_with_restarts", "linear", "polynomial"],
                value=self.config.get("basic.lr_scheduler", self.lr_scheduler_value),
            )
            self.optimizer = gr.Dropdown(label="Optimizer", choices=["AdamW", "AdamW8bit", "Prodigy"], value="AdamW8bit", interactive=True)

    def init_grad_and_lr_controls(self) -> None:
        with gr.Row():
            self.lr_scheduler_args = gr.Textbox(label="LR scheduler extra arguments", placeholder="(Optional) eg: milestones=[1,10,30,50] gamma=0.1", value="")

    def init_learning_rate_controls(self) -> None:
        with gr.Row():
            self.learning_rate = gr.Number(label="Learning rate", value=self.learning_rate_value, minimum=0, maximum=1)
            self.lr_warmup = gr.Slider(label="LR warmup (% of total steps)", value=self.lr_warmup_value, minimum=0, maximum=100, step=1)

    def init_scheduler_controls(self) -> None:
        with gr.Row(visible=not self.finetuning):
            self.lr_scheduler_num_cycles = gr.Textbox(label="LR # cycles", placeholder="(Optional) For Cosine with restart and polynomial only")
            self.lr_scheduler_power = gr.Textbox(label="LR power", placeholder="(Optional) For Cosine with restart and polynomial only")
