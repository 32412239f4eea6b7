"""sdsched-plugin: learning-rate schedules with a floor for kohya-ss/sd-scripts.

This package ``__init__`` stays free of imports (the startup hook, ``_sdsched_plugin_boot``,
imports it only when a host trainer module is imported): the public names below load their
modules on first access (PEP 562).

``--lr_scheduler_type=sdsched_plugin.CosineWithRestartsFloor`` in a stock sd-scripts
resolves the scheduler classes through this lazy lookup.
"""

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY = {
    "LinearFloor": "sdsched_plugin.schedule.schedulers",
    "CosineFloor": "sdsched_plugin.schedule.schedulers",
    "CosineWithRestartsFloor": "sdsched_plugin.schedule.schedulers",
    "PolynomialFloor": "sdsched_plugin.schedule.schedulers",
    "RexFloor": "sdsched_plugin.schedule.schedulers",
    "Rex": "sdsched_plugin.schedule.schedulers",
    "FloorScheduler": "sdsched_plugin.schedule.schedulers",
    "install": "sdsched_plugin.hosts.sd_scripts",
    "uninstall": "sdsched_plugin.hosts.sd_scripts",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module 'sdsched_plugin' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module_name), name)


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
