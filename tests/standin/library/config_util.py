"""Stand-in for kohya-ss/sd-scripts' ``library/config_util.py``, for CI (sd-scripts is not on PyPI).

Only what the plugin meets: ``load_user_config(file)`` (the --dataset_config reader) and
``BlueprintGenerator.generate`` (its schema check), both there in every release since v0.7.0 and
wrapped by the plugin's dataset hook, and
``generate_dataset_group_by_blueprint(dataset_group_blueprint)``,
which every training script calls through the module after parsing and before loading the
model, and which returns ``(train group, validation group or None)`` since 2025 (a single
group before). ``len()`` of the train group is the number of batches in one epoch: the
``len(train_dataloader)`` that train_network.py turns ``--max_train_epochs`` into steps with.
The real blueprint describes datasets and subsets; here each dataset just says its batch count.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import toml


@dataclass
class DatasetBlueprint:
    batches: int


@dataclass
class DatasetGroupBlueprint:
    datasets: list = field(default_factory=list)


class DatasetGroup:
    def __init__(self, datasets):
        self.datasets = datasets

    def __len__(self):
        return sum(dataset.batches for dataset in self.datasets)


class BlueprintGenerator:
    """sd-scripts validates the user config against its schema here; the stand-in's config is
    ``{"datasets": [{"batches": N}, ...]}``."""

    def __init__(self, sanitizer=None):
        self.sanitizer = sanitizer

    def generate(self, user_config: dict, argparse_namespace, **runtime_params):
        datasets = [DatasetBlueprint(int(dataset["batches"])) for dataset in user_config.get("datasets", [])]
        return type("Blueprint", (), {"dataset_group": DatasetGroupBlueprint(datasets)})()


def generate_dataset_group_by_blueprint(dataset_group_blueprint: DatasetGroupBlueprint):
    return DatasetGroup(list(dataset_group_blueprint.datasets)), None


def load_user_config(file: str) -> dict:
    """As sd-scripts reads a --dataset_config: JSON or TOML, its parser's errors raised as they come."""
    file = Path(file)
    if not file.is_file():
        raise ValueError(f"file not found / ファイルが見つかりません: {file}")
    if file.name.lower().endswith(".json"):
        with open(file, "r") as f:
            return json.load(f)
    if file.name.lower().endswith(".toml"):
        return toml.load(file)
    raise ValueError(f"not supported config file format / 対応していない設定ファイルの形式です: {file}")
