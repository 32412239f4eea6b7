"""Stand-in for musubi-tuner's ``musubi_tuner/utils/sai_model_spec.py``: ``build_metadata``, which
every trainer's save merges into the model's metadata (a few of its keys here)."""


def build_metadata(state_dict, architecture: str, timestamp: float, title=None, reso=None, author=None, description=None,
                   license=None, tags=None, merged_from=None, timesteps=None, is_lora: bool = True, custom_arch=None):  # fmt: skip
    return {"modelspec.sai_model_spec": "1.0.0", "modelspec.architecture": f"{architecture}/lora" if is_lora else architecture,
            "modelspec.title": title or "untitled", "modelspec.date": str(int(timestamp))}  # fmt: skip
