"""Public import path of the torch scheduler classes (they live in ``schedule.schedulers``).

A third-party schedule subclasses ``sdsched_plugin.schedulers.FloorScheduler``; kept here so that
import path, documented in the README, keeps working.
"""

from .schedule.schedulers import (  # noqa: F401
    CosineFloor,
    CosineWithRestartsFloor,
    FloorScheduler,
    LinearFloor,
    PolynomialFloor,
    Rex,
    RexFloor,
)

__all__ = ["CosineFloor", "CosineWithRestartsFloor", "FloorScheduler", "LinearFloor", "PolynomialFloor", "Rex", "RexFloor"]
