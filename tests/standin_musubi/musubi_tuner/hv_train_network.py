"""Stand-in for kohya-ss/musubi-tuner's ``musubi_tuner/hv_train_network.py`` from v0.3.0, for CI.

Written from reading the real module (revision 30c658c), not copied: from v0.3.0 it takes
``setup_parser_common``, ``read_config_from_file`` and ``NetworkTrainer`` from the ``training``
package, and the other trainers import them from here, by name.
"""

from musubi_tuner.training.parser_common import read_config_from_file, setup_parser_common  # noqa: F401
from musubi_tuner.training.trainer_base import NetworkTrainer  # noqa: F401
