"""Stand-in of kohya_ss v25.0 – v26.0 / master's kohya_gui/class_basic_training.py (Gradio 5.34 and
6.x), written for the tests: the v24 layout plus the "LR Scheduler type" menu, the "LR warmup steps
(override)" field and the menu's longer list, with the same names and labels as the real module."""

import gradio as gr


class BasicTraining:
    def __init__(
        self,
        sdxl_checkbox: gr.Checkbox,
        learning_rate_value: float = "1e-6",
        lr_scheduler_value: str = "constant",
        lr_warmup_value: float = 0,
        lr_warmup_steps_value: int = 0,
        finetuning: bool = False,
        dreambooth: bool = False,
        config: dict = {},
    ) -> None:
        self.sdxl_checkbox = sdxl_checkbox
        self.learning_rate_value = learning_rate_value
        self.lr_scheduler_value = lr_scheduler_value
        self.lr_warmup_value = lr_warmup_value
        self.lr_warmup_steps_value = lr_warmup_steps_value
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
            self.max_train_epochs = gr.Number(
                label="Max train epoch", info="training epochs (overrides max_train_steps). 0 = no override", step=1, minimum=0,
                value=self.config.get("basic.max_train_epochs", 0),
            )
            self.max_train_steps = gr.Number(
                label="Max train steps", info="Overrides # training steps. 0 = no override", step=1,
                value=self.config.get("basic.max_train_steps", 1600),
            )

    def init_lr_and_optimizer_controls(self) -> None:
        with gr.Row():
            self.lr_scheduler = gr.Dropdown(
                label="LR Scheduler",
                choices=[
                    "adafactor", "constant", "constant_with_warmup", "cosine", "cosine_with_restarts", "linear",
                    "piecewise_constant", "polynomial", "cosine_with_min_lr", "inverse_sqrt", "warmup_stable_decay",
                ],
                value=self.config.get("basic.lr_scheduler", self.lr_scheduler_value),
            )
            self.lr_scheduler_type = gr.Dropdown(
                label="LR Scheduler type", info="(Optional) custom scheduler module name", choices=["", "CosineAnnealingLR"],
                value=self.config.get("basic.lr_scheduler_type", ""), allow_custom_value=True,
            )
            self.optimizer = gr.Dropdown(
                label="Optimizer", choices=["AdamW", "AdamW8bit", "Prodigy"], value=self.config.get("basic.optimizer", "AdamW8bit"),
                interactive=True, allow_custom_value=True,
            )

    def init_grad_and_lr_controls(self) -> None:
        with gr.Row():
            self.max_grad_norm = gr.Number(label="Max grad norm", value=1.0, interactive=True)
            self.lr_scheduler_args = gr.Textbox(
                label="LR scheduler extra arguments", lines=2, placeholder="(Optional) eg: milestones=[1,10,30,50] gamma=0.1",
                value=self.config.get("basic.lr_scheduler_args", ""),
            )

    def init_learning_rate_controls(self) -> None:
        with gr.Row():
            self.learning_rate = gr.Number(label="Learning rate", value=self.config.get("basic.learning_rate", self.learning_rate_value), minimum=-1, maximum=1)
            self.lr_warmup = gr.Slider(label="LR warmup (% of total steps)", value=self.config.get("basic.lr_warmup", self.lr_warmup_value), minimum=0, maximum=100, step=1)
            self.lr_warmup_steps = gr.Number(label="LR warmup steps (override)", value=self.config.get("basic.lr_warmup_steps", self.lr_warmup_steps_value), minimum=0, step=1)

    def init_scheduler_controls(self) -> None:
        with gr.Row(visible=not self.finetuning):
            self.lr_scheduler_num_cycles = gr.Number(
                label="LR # cycles", minimum=1, step=1, info="Number of restarts for cosine scheduler with restarts",
                value=self.config.get("basic.lr_scheduler_num_cycles", 1),
            )
            self.lr_scheduler_power = gr.Number(
                label="LR power", minimum=0.0, step=0.01, info="Polynomial power for polynomial scheduler",
                value=self.config.get("basic.lr_scheduler_power", 1.0),
            )
