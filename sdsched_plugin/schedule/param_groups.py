"""The param groups a training script hands its optimizer, each with its base LR, in the script's
order, read from the script's parsed arguments. Standard library only; imports nothing of
sd-scripts (the arguments say which script made them: each script's parser defines its own LR
flags).

Groups at LR 0 are left out where the script leaves them out ("0 means not train"). Which script
built ``args`` is told by its flags:

- a LoRA / network (``--network_module``): train_network.py's text encoder group(s), then the
  U-Net's, each followed by its LoRA+ group; a group at LR 0 dropped ("NO LR skipping");
- train_db.py (``--stop_text_encoder_training``): one group for U-Net and text encoder, or
  U-Net then text encoder with ``--learning_rate_te``; the U-Net alone when
  ``--stop_text_encoder_training`` is negative;
- fine_tune.py (``--learning_rate_te`` and ``--train_text_encoder``): U-Net then text encoder
  with both flags, else one group;
- sdxl_train.py / sd3_train.py (``--learning_rate_te1``): U-Net (or the 23 ``--block_lr``
  groups) / MMDiT, then each trained text encoder at ``--learning_rate_teN or --learning_rate``;
- sdxl_train_control_net.py (``--control_net_lr``): the ControlNet, then the U-Net;
- anima_train.py (``--self_attn_lr`` ...): ``get_anima_param_groups``' six groups;
- every other script: one group at ``--learning_rate``.
"""

from __future__ import annotations

from . import options


def _lr(value, flag: str):
    return options.learning_rate(value, flag)


def _first(value):
    """--text_encoder_lr is a list in current sd-scripts, a float in older ones and TOML."""
    if isinstance(value, (list, tuple)):
        return value[0] if value else None
    return value


def _network_args(args) -> dict:
    pairs = {}
    for token in getattr(args, "network_args", None) or []:
        key, sep, value = str(token).partition("=")
        if sep:
            pairs[key.strip()] = value.strip()
    return pairs


def network_groups(args, learning_rate) -> list[tuple[str, float]]:
    """train_network.py's ``prepare_optimizer_params``."""
    network_args = _network_args(args)
    plus = _lr(network_args.get("loraplus_lr_ratio"), "--network_args loraplus_lr_ratio")
    groups = []

    def add(name, lr, ratio):
        if lr:
            groups.append((name, lr))
            if ratio:
                groups.append((f"{name} plus", lr * ratio))

    text_encoder_trained = not getattr(args, "network_train_unet_only", False) and not getattr(args, "cache_text_encoder_outputs", False)
    if text_encoder_trained:
        text_encoder_lrs = getattr(args, "text_encoder_lr", None)
        ratio = _lr(network_args.get("loraplus_text_encoder_lr_ratio"), "--network_args loraplus_text_encoder_lr_ratio") or plus
        if isinstance(text_encoder_lrs, (list, tuple)) and len(text_encoder_lrs) > 1 and not str(args.network_module).endswith(".lora"):
            for index, lr in enumerate(text_encoder_lrs):  # networks with one LR per text encoder (FLUX.1, SD3, ...)
                add(f"textencoder{index + 1}", _lr(lr, "--text_encoder_lr"), ratio)
        else:
            text_encoder_lr = _lr(_first(text_encoder_lrs), "--text_encoder_lr")
            add("textencoder", learning_rate if text_encoder_lr is None else text_encoder_lr, ratio)
    if not getattr(args, "network_train_text_encoder_only", False):
        unet_lr = _lr(getattr(args, "unet_lr", None), "--unet_lr")
        ratio = _lr(network_args.get("loraplus_unet_lr_ratio"), "--network_args loraplus_unet_lr_ratio") or plus
        add("unet", learning_rate if unet_lr is None else unet_lr, ratio)
    return groups


def _train_db(args, learning_rate) -> list[tuple[str, float]]:
    stop = getattr(args, "stop_text_encoder_training", None)
    if stop is not None and stop < 0:  # train_text_encoder = stop is None or stop >= 0
        return [("unet", learning_rate)]
    te_lr = _lr(getattr(args, "learning_rate_te", None), "--learning_rate_te")
    if te_lr is None:
        return [("unet+textencoder", learning_rate)]
    return [("unet", learning_rate), ("textencoder", te_lr)]


def _fine_tune(args, learning_rate) -> list[tuple[str, float]]:
    te_lr = _lr(getattr(args, "learning_rate_te", None), "--learning_rate_te")
    if not getattr(args, "train_text_encoder", False):
        return [("unet", learning_rate)]
    if te_lr is None:
        return [("unet+textencoder", learning_rate)]
    return [("unet", learning_rate), ("textencoder", te_lr)]


def _sdxl_train(args, learning_rate) -> list[tuple[str, float]]:
    groups = []
    if learning_rate != 0:  # train_unet = args.learning_rate != 0
        block_lr = getattr(args, "block_lr", None)
        if block_lr:
            for index, value in enumerate(str(block_lr).split(",")):
                lr = _lr(value.strip(), "--block_lr")
                if lr != 0:  # get_block_params_to_optimize: "do not optimize when lr is 0"
                    groups.append((f"unet block{index}", lr))
        else:
            groups.append(("unet", learning_rate))
    if getattr(args, "train_text_encoder", False):
        for index in (1, 2):
            lr = _lr(getattr(args, f"learning_rate_te{index}", None), f"--learning_rate_te{index}")
            if lr is None or lr != 0:  # None: --learning_rate; 0 means not train
                groups.append((f"textencoder{index}", lr or learning_rate))
    return groups


def _sd3_train(args, learning_rate) -> list[tuple[str, float]]:
    groups = [("mmdit", learning_rate)]
    if getattr(args, "train_text_encoder", False):
        lrs = [_lr(getattr(args, f"learning_rate_te{index}", None), f"--learning_rate_te{index}") for index in (1, 2, 3)]
        lrs = [learning_rate if lr is None else lr for lr in lrs]
        for index, name in ((0, "clip_l"), (1, "clip_g")):
            if (lrs[0] != 0 or lrs[1] != 0) and lrs[index] > 0:
                groups.append((name, lrs[index]))
        if lrs[2] != 0 and getattr(args, "train_t5xxl", False):
            groups.append(("t5xxl", lrs[2]))
    return groups


def _anima_train(args, learning_rate) -> list[tuple[str, float]]:
    if learning_rate == 0:  # train_dit = args.learning_rate != 0
        return []
    groups = [("base", learning_rate)]
    for name in ("self_attn", "cross_attn", "mlp", "mod", "llm_adapter"):
        lr = _lr(getattr(args, f"{name}_lr", None), f"--{name}_lr")
        lr = learning_rate if lr is None else lr
        if lr != 0:  # "Frozen ... params"
            groups.append((name, lr))
    return groups


def param_groups(args) -> list[tuple[str, float]]:
    """(name, base LR) of each param group in the order the script that parsed ``args`` builds them."""
    learning_rate = _lr(getattr(args, "learning_rate", None), "--learning_rate")
    if getattr(args, "network_module", None):
        return network_groups(args, learning_rate)
    if hasattr(args, "network_module"):  # a network script's parser (anima_train_network.py also has --self_attn_lr): no network, one group
        return [("all", learning_rate)]
    for marker, groups_of in (
        ("stop_text_encoder_training", _train_db),
        ("learning_rate_te3", _sd3_train),
        ("learning_rate_te1", _sdxl_train),
        ("learning_rate_te", _fine_tune),
        ("self_attn_lr", _anima_train),
    ):
        if hasattr(args, marker):
            return groups_of(args, learning_rate)
    if hasattr(args, "control_net_lr"):  # sdxl_train_control_net.py: ControlNet, then the U-Net
        return [("controlnet", _lr(args.control_net_lr, "--control_net_lr")), ("unet", learning_rate)]
    return [("all", learning_rate)]
