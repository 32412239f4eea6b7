"""Stand-in for kohya-ss/sd-scripts' ``train_network.py``, for CI: its ``setup_parser()`` (the
flags the preview reads, built from the stand-in ``library.train_util`` as the real script
builds its parser from the real one) and a ``__main__`` block that never runs on import."""

import argparse

import library.train_util as train_util


def setup_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    train_util.add_training_arguments(parser, True)
    train_util.add_optimizer_arguments(parser)
    parser.add_argument("--unet_lr", type=float, default=None, help="learning rate for U-Net / U-Netの学習率")
    parser.add_argument("--text_encoder_lr", type=float, default=None, nargs="*", help="learning rate for Text Encoder")
    parser.add_argument("--network_module", type=str, default=None, help="network module to train")
    parser.add_argument("--network_args", type=str, default=None, nargs="*", help="additional arguments for network")
    parser.add_argument("--network_train_unet_only", action="store_true", help="only training U-Net part")
    parser.add_argument("--network_train_text_encoder_only", action="store_true", help="only training Text Encoder part")
    parser.add_argument("--pretrained_model_name_or_path", type=str, default=None, help="the model (read by the script, not the schedule)")
    parser.add_argument("--network_dim", type=int, default=None, help="network dimensions (a flag only the script knows)")
    parser.add_argument("--train_data_dir", type=str, default=None, help="directory for train images")
    parser.add_argument("--train_batch_size", type=int, default=1, help="batch size for training")
    return parser


if __name__ == "__main__":
    raise SystemExit("the stand-in trains nothing")
