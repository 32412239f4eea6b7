"""Reading a training run before it starts: the pasted command (``command``), and counting its
dataset the way each host does (``layout``: the folder layout, pure; ``sd_scripts``: sd-scripts' own
parser and dataset code, through the patched host; ``musubi``: musubi-tuner's latent caches).

Imports ``schedule`` and ``hosts``; never ``commands`` or the CLI.
"""
