"""The schedule registry: name -> scheduler class.

Schedules are found through the ``sdsched_plugin.schedules`` entry-point group, which the
package's own four names use too, so a third-party package adds a schedule the same way
(``my_floor = "my_pkg.schedules:MyFloor"``, a ``schedulers.FloorScheduler`` subclass).
``register()`` adds one at run time (tests, notebooks).

Entry points are read only when a name is looked up (``importlib.metadata`` costs tens of ms to
import, so never at startup), and only the one looked up is loaded: a broken entry point is
reported by name once and never hides the others.
"""

from __future__ import annotations

import difflib
import sys

GROUP = "sdsched_plugin.schedules"

_registered: dict[str, type] = {}
_entry_points: dict | None = None  # name -> EntryPoint, read once
_broken: dict[str, str] = {}  # name -> why it failed to load


class UnknownSchedule(ValueError):
    pass


def register(cls: type) -> type:
    """Add a ``FloorScheduler`` subclass under its ``name``; usable as a class decorator."""
    _registered[cls.name] = cls
    return cls


def _read_entry_points() -> dict:
    global _entry_points
    if _entry_points is None:
        from importlib.metadata import entry_points

        _entry_points = {ep.name: ep for ep in entry_points(group=GROUP)}
    return _entry_points


def names() -> list[str]:
    """All schedule names, loading none of them."""
    return sorted((set(_read_entry_points()) | set(_registered)) - set(_broken))


def has(name: str) -> bool:
    return name in _registered or name in _read_entry_points()


def get(name: str, flag: str = "--lr_scheduler") -> type:
    """The scheduler class registered as ``name``; UnknownSchedule lists the close names."""
    if name in _registered:
        return _registered[name]
    entry_point = _read_entry_points().get(name)
    if entry_point is not None and name not in _broken:
        cls = _load(entry_point)
        if cls is not None:
            return cls
    raise UnknownSchedule(unknown_message(name, flag))


def unknown_message(name: str, flag: str, extra=()) -> str:
    """Names the flag and the closest known names; ``extra`` adds names that are not ours
    (sd-scripts' own schedules, for --lr_scheduler)."""
    known = sorted(set(names()) | set(extra))
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    hint_ja = f" 近い名前: {', '.join(close)}" if close else ""
    return (
        f"{flag}: unknown schedule {name!r}.{hint} Known: {', '.join(known)}"
        f" / {flag}: スケジューラ {name!r} はありません。{hint_ja} 使えるもの: {', '.join(known)}"
    )


def _load(entry_point) -> type | None:
    from .schedulers import FloorScheduler

    try:
        cls = entry_point.load()
        if not (isinstance(cls, type) and issubclass(cls, FloorScheduler)):
            raise TypeError(f"{entry_point.value} is not a sdsched_plugin.schedulers.FloorScheduler subclass")
    except Exception as error:  # one broken plugin must not hide the others
        _broken[entry_point.name] = repr(error)
        sys.stderr.write(f"sdsched-plugin: skipping schedule {entry_point.name!r} from {entry_point.value}: {error!r}\n")
        return None
    _registered[entry_point.name] = cls
    return cls


def spec(name: str, flag: str = "--lr_scheduler"):
    """TEMPORARY until the pure specs land: the torch class."""
    return get(name, flag)


def spec_by_class_name(class_name: str, flag: str = "--lr_scheduler_type"):
    for name in names():
        cls = get(name, flag)
        if cls.__name__ == class_name:
            return cls
    raise UnknownSchedule(f"{flag}: no class {class_name}")


def curve_of(cls, settings):
    pure = getattr(cls, "pure_curve", None)
    return pure(settings) if pure is not None else cls.curve(settings)
