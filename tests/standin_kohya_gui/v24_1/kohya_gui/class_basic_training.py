"""Stand-in of kohya_ss v24.1.x's kohya_gui/class_basic_training.py (Gradio 4.43), written for the
tests: the step counts, epochs, cycles and power are Number fields read from ``config``, and the
menu's change resets the warmup for ``constant``, as in the real module."""

import gradio as gr


class BasicTraining:
    def __init__(self, sdxl_checkbox, learning_rate_value=1e-6, lr_scheduler_value="constant", lr_warmup_value=0, finetuning=False, dreambooth=False, config={}):
        self.sdxl_checkbox = sdxl_checkbox
        self.learning_rate_value, self.lr_scheduler_value, self.lr_warmup_value = learning_rate_value, lr_scheduler_value, lr_warmup_value
        self.finetuning, self.config, self.old_lr_warmup = finetuning, config, 0
        self.initialize_ui_components()

    def initialize_ui_components(self):
        self.init_training_controls()
        self.init_lr_and_optimizer_controls()
        self.init_grad_and_lr_controls()
        self.init_learning_rate_controls()
        self.init_scheduler_controls()

    def init_training_controls(self):
        with gr.Row():
            self.train_batch_size = gr.Slider(minimum=1, maximum=64, label="Train batch size", value=1, step=1)
            self.epoch = gr.Number(label="Epoch", value=self.config.get("basic.epoch", 1), precision=0)
            self.max_train_epochs = gr.Number(label="Max train epoch", minimum=0, step=1, value=self.config.get("basic.max_train_epochs", 0))
            self.max_train_steps = gr.Number(label="Max train steps", step=1, value=self.config.get("basic.max_train_steps", 1600))

    def init_lr_and_optimizer_controls(self):
        with gr.Row():
            self.lr_scheduler = gr.Dropdown(
                label="LR Scheduler",
                choices=["adafactor", "constant", "constant_with_warmup", "cosine", "cosine_with_restarts", "linear", "polynomial"],
                value=self.config.get("basic.lr_scheduler", self.lr_scheduler_value),
            )
            self.optimizer = gr.Dropdown(label="Optimizer", choices=["AdamW", "AdamW8bit", "Prodigy"], value="AdamW8bit", interactive=True)

    def init_grad_and_lr_controls(self):
        with gr.Row():
            self.max_grad_norm = gr.Number(label="Max grad norm", value=1.0, interactive=True)
            self.lr_scheduler_args = gr.Textbox(label="LR scheduler extra arguments", lines=2, value=self.config.get("basic.lr_scheduler_args", ""))

    def init_learning_rate_controls(self):
        with gr.Row():
            self.learning_rate = gr.Number(label="Learning rate", value=self.config.get("basic.learning_rate", self.learning_rate_value), minimum=0, maximum=1)
            self.lr_warmup = gr.Slider(label="LR warmup (% of total steps)", value=self.config.get("basic.lr_warmup", self.lr_warmup_value), minimum=0, maximum=100, step=1)

            def lr_scheduler_changed(scheduler, value):
                if scheduler == "constant":
                    self.old_lr_warmup, value = value, 0
                    return gr.Slider(value=value, interactive=False)
                value, self.old_lr_warmup = (self.old_lr_warmup or value), 0
                return gr.Slider(value=value, interactive=True)

            self.lr_scheduler.change(lr_scheduler_changed, inputs=[self.lr_scheduler, self.lr_warmup], outputs=self.lr_warmup)

    def init_scheduler_controls(self):
        with gr.Row(visible=not self.finetuning):
            self.lr_scheduler_num_cycles = gr.Number(label="LR # cycles", minimum=1, step=1, value=self.config.get("basic.lr_scheduler_num_cycles", 1))
            self.lr_scheduler_power = gr.Number(label="LR power", minimum=0.0, step=0.01, value=self.config.get("basic.lr_scheduler_power", 1.0))
