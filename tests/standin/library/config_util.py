"""Stand-in for kohya-ss/sd-scripts' ``library/config_util.py``, for CI (sd-scripts is not on PyPI).

Only what the plugin meets: ``generate_dataset_group_by_blueprint(dataset_group_blueprint)``,
which every training script calls through the module after parsing and before loading the
model, and which returns ``(train group, validation group or None)`` since 2025 (a single
group before). ``len()`` of the train group is the number of batches in one epoch: the
``len(train_dataloader)`` that train_network.py turns ``--max_train_epochs`` into steps with.
The real blueprint describes datasets and subsets; here each dataset just says its batch count.
"""

from dataclasses import dataclass, field


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


def generate_dataset_group_by_blueprint(dataset_group_blueprint: DatasetGroupBlueprint):
    return DatasetGroup(list(dataset_group_blueprint.datasets)), None
