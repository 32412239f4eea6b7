"""A tiny training script in the shape of sd-scripts' train_network.py ``__main__`` and
``train()``, run against the stand-in or a real sd-scripts checkout (``library`` on sys.path),
or, with ``TINY_HOST=musubi``, in the shape of a musubi-tuner ``*_train_network.py``
(``musubi_tuner`` on sys.path); ``TINY_HOST=musubi_v02`` / ``musubi_v01``: the same before
musubi-tuner v0.3.0, the names imported from ``musubi_tuner.hv_train_network`` (v0.2.x) or the
top-level ``hv_train_network`` (v0.1.x) as its ``wan_train_network.py`` does:

parser from the host's own argument functions -> parse_args -> read_config_from_file ->
"MODEL LOADING" marker (everything after it is where a real run has spent minutes) ->
epochs turned into steps -> get_scheduler_fix -> accelerator.prepare -> optional resume ->
the step loop under ``accelerator.accumulate`` -> optional save_state.

Each process writes ``<trace_dir>/rank<N>.json``: per optimizer step, the LRs of both param
groups (U-Net-like and text-encoder-like), read from the optimizer as the step uses them.
"""

import argparse
import json
import math
import os
import sys
import time

import torch
from accelerate import Accelerator
from accelerate.utils import set_seed

HOST = os.environ.get("TINY_HOST", "sd-scripts")
MUSUBI = HOST.startswith("musubi")
if HOST == "musubi":  # the names musubi-tuner's scripts import
    from musubi_tuner.training.parser_common import read_config_from_file, setup_parser_common
    from musubi_tuner.training.trainer_base import NetworkTrainer
elif HOST == "musubi_v02":
    from musubi_tuner.hv_train_network import NetworkTrainer, read_config_from_file, setup_parser_common
elif HOST == "musubi_v01":
    from hv_train_network import NetworkTrainer, read_config_from_file

    try:
        from hv_train_network import setup_parser_common
    except ImportError:  # up to v0.1.6
        from hv_train_network import setup_parser as setup_parser_common
else:
    import library.train_util as train_util

    try:
        import library.config_util as config_util
    except ImportError:  # a host without the dataset module
        config_util = None


def host_parser():
    if MUSUBI:
        return setup_parser_common()
    parser = argparse.ArgumentParser()
    train_util.add_training_arguments(parser, True)
    train_util.add_optimizer_arguments(parser)
    return parser


def host_read_config(args, parser):
    return read_config_from_file(args, parser) if MUSUBI else train_util.read_config_from_file(args, parser)


def host_scheduler(args, optimizer, num_processes):
    if MUSUBI:
        trainer = NetworkTrainer()
        get_lr_scheduler = getattr(trainer, "get_lr_scheduler", None) or trainer.get_scheduler  # up to v0.1.6
        return get_lr_scheduler(args, optimizer, num_processes)
    return train_util.get_scheduler_fix(args, optimizer, num_processes)


def setup_parser():
    parser = host_parser()
    parser.add_argument("--trace_dir", required=True, help="where each process writes its LR trace (driver only)")
    parser.add_argument("--samples", type=int, default=8, help="dataset size (driver only)")
    parser.add_argument("--save_state_at", type=int, nargs="*", default=[], help="optimizer steps to save the state at (driver only)")
    parser.add_argument("--stop_at", type=int, default=None, help="optimizer step to stop at (driver only)")
    parser.add_argument("--start_at", type=int, default=0, help="optimizer step a resumed run starts at (driver only)")
    parser.add_argument("--hang", action="store_true", help="write <trace_dir>/hang-rank<N>.pid, then never end (driver only)")
    parser.add_argument("--save_model", default=None, help="at the end, save the model as train_network.py saves a LoRA (driver only)")
    return parser


def save_model(path, model, args, num_batches_per_epoch: int):
    """As train_network.py's save_model: its ss_ keys (every value as text), then the ModelSpec
    metadata of train_util.get_sai_model_spec merged in, then the file."""
    from safetensors.torch import save_file

    metadata = {
        "ss_learning_rate": args.learning_rate, "ss_text_encoder_lr": None, "ss_unet_lr": None,
        "ss_num_batches_per_epoch": num_batches_per_epoch, "ss_gradient_accumulation_steps": args.gradient_accumulation_steps,
        "ss_max_train_steps": args.max_train_steps, "ss_lr_warmup_steps": args.lr_warmup_steps,
        "ss_lr_scheduler": args.lr_scheduler, "ss_network_module": "networks.lora",
    }  # fmt: skip
    metadata = {key: str(value) for key, value in metadata.items()}
    if not MUSUBI:
        metadata.update(train_util.get_sai_model_spec(None, args, False, True, False))
    else:  # musubi-tuner's trainers: sai_model_spec.build_metadata(None, architecture, time, title, ...)
        from musubi_tuner.utils import sai_model_spec

        metadata.update(sai_model_spec.build_metadata(None, "hv", time.time(), getattr(args, "output_name", None)))
    save_file({name: tensor.detach().contiguous() for name, tensor in model.state_dict().items()}, path, metadata)


def build_dataset_group(args):
    """Where sd-scripts' scripts build their dataset group: after parsing, before the model.
    With the stand-in the blueprint just says the batch count (--samples); a real checkout
    needs real images, which the sd-scripts tests give it through a real training instead."""
    if MUSUBI or config_util is None or not getattr(train_util, "STANDIN", False):
        return None
    blueprint = config_util.DatasetGroupBlueprint([config_util.DatasetBlueprint(args.samples)])
    return config_util.generate_dataset_group_by_blueprint(blueprint)


class TinyNetwork(torch.nn.Module):
    """Two parts with their own LRs, like a LoRA's U-Net and text-encoder modules."""

    def __init__(self):
        super().__init__()
        self.unet, self.text_encoder = torch.nn.Linear(4, 4), torch.nn.Linear(4, 4)

    def forward(self, batch):
        return (self.unet(batch) ** 2).mean() + (self.text_encoder(batch) ** 2).mean()


def main():
    parser = setup_parser()
    args = parser.parse_args()
    args = host_read_config(args, parser)
    build_dataset_group(args)
    print("MODEL LOADING", flush=True)

    accelerator = Accelerator(gradient_accumulation_steps=args.gradient_accumulation_steps, cpu=True)
    if args.hang:  # a run that never ends, every process up: for the test that a timeout ends them all
        marker = os.path.join(args.trace_dir, f"hang-rank{accelerator.process_index}.pid")
        with open(marker + ".tmp", "w") as handle:
            handle.write(str(os.getpid()))
        os.replace(marker + ".tmp", marker)
        while True:
            time.sleep(60)
    set_seed(0)
    model = TinyNetwork()
    params = [
        {"params": model.unet.parameters(), "lr": args.learning_rate},
        {"params": model.text_encoder.parameters(), "lr": args.learning_rate / 2},
    ]
    optimizer = torch.optim.AdamW(params, lr=args.learning_rate)
    data = torch.utils.data.TensorDataset(torch.randn(args.samples, 4))
    dataloader = torch.utils.data.DataLoader(data, batch_size=1)
    if args.max_train_epochs is not None:  # as train_network.py does once the dataset is known
        args.max_train_steps = args.max_train_epochs * math.ceil(
            len(dataloader) / accelerator.num_processes / args.gradient_accumulation_steps
        )
    # as train_network.py names its groups (what it logs as lr/unet, lr/textencoder); the plugin reads them from
    # the frame that asks for the scheduler to find the text encoder's groups
    lr_descriptions = ["unet", "textencoder"]  # noqa: F841
    lr_scheduler = host_scheduler(args, optimizer, accelerator.num_processes)
    model, optimizer, dataloader, lr_scheduler = accelerator.prepare(model, optimizer, dataloader, lr_scheduler)
    if args.resume:
        accelerator.load_state(args.resume)

    trace, step = [], args.start_at
    stop = args.stop_at if args.stop_at is not None else args.max_train_steps
    while step < stop:
        for (batch,) in dataloader:
            with accelerator.accumulate(model):
                lrs = [group["lr"] for group in optimizer.param_groups]
                loss = model(batch)
                accelerator.backward(loss)
                optimizer.step()
                lr_scheduler.step()
                optimizer.zero_grad()
            if accelerator.sync_gradients:
                trace.append({"step": step, "lrs": lrs, "last_lr": list(lr_scheduler.get_last_lr())})
                step += 1
                if args.save_state and step in args.save_state_at:
                    accelerator.wait_for_everyone()
                    if accelerator.is_main_process:
                        accelerator.save_state(os.path.join(args.output_dir, f"state-{step}"))
                    accelerator.wait_for_everyone()
                if step >= stop:
                    break
    if args.save_model and accelerator.is_main_process:
        save_model(args.save_model, accelerator.unwrap_model(model), args, len(dataloader))
    record = {"rank": accelerator.process_index, "scheduler": type(lr_scheduler.scheduler).__name__, "trace": trace}
    with open(os.path.join(args.trace_dir, f"rank{accelerator.process_index}.json"), "w") as handle:
        json.dump(record, handle)
    accelerator.end_training()
    # On 2 gloo processes, freeing main's locals can deadlock torch: the DDP reducer's process group
    # joins its worker thread while that thread waits for the GIL the dealloc holds (py-spy:
    # ProcessGroupGloo::~ProcessGroupGloo in std::thread::join), and the launch hung until its
    # timeout. The trace is written: leave before anything is freed.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
