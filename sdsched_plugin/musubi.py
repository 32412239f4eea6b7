"""Public import path of the musubi-tuner patch (it lives in ``hosts.musubi``):
``sdsched_plugin.musubi.install()``, documented in the README."""

from .hosts.musubi import install, is_installed  # noqa: F401

__all__ = ["install", "is_installed"]
