"""The schedule registry: name -> schedule.

Schedules are found through the ``sdsched_plugin.schedules`` entry-point group, which the
package's own four names use too, so a third-party package adds a schedule the same way
(``my_floor = "my_pkg.schedules:MyFloor"``, a ``schedulers.FloorScheduler`` subclass).
``register()`` adds one at run time (tests, notebooks).

Entry points are read only when a name is looked up (``importlib.metadata`` costs tens of ms to
import, so never at startup). ``spec()`` answers the package's own names with their torch-free
spec (``specs``), so the preview imports no torch; a third-party class is loaded (torch and
all) and handed out guarded: anything it raises in ``settings()``, ``check()``, its curve or its
constructor, other than an ``options.OptionError``, becomes one ``ScheduleError`` line naming
the schedule and its package. A third-party entry point counts as available only once it has
loaded: ``names()`` tries them, ``broken()`` says which failed and why.
"""

from __future__ import annotations

import difflib

GROUP = "sdsched_plugin.schedules"
OWN = "sdsched_plugin.schedule.schedulers:"  # the value of the package's own entry points (pyproject.toml)

_registered: dict[str, type] = {}
_entry_points: dict | None = None  # name -> EntryPoint, read once
_loaded: dict[str, type] = {}  # name -> class, loaded from its entry point
_broken: dict[str, str] = {}  # name -> why it failed to load, one line with its package


class RegistryError(ValueError):
    """A schedule name that cannot be used; the message is one line, English / 日本語."""


class UnknownSchedule(RegistryError):
    pass


class ScheduleError(RegistryError):
    """A third-party schedule raised something other than an options.OptionError."""


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


def _is_own(entry_point) -> bool:
    return entry_point.value.startswith(OWN)


def package_of(entry_point) -> str:
    """The distribution that declares an entry point, else the top module it points into."""
    dist = getattr(entry_point, "dist", None)
    name = getattr(dist, "name", None) if dist is not None else None
    return name or entry_point.value.partition(":")[0].partition(".")[0]


def _third_party() -> list:
    return [ep for name, ep in _read_entry_points().items() if not _is_own(ep) and name not in _registered]


def names() -> list[str]:
    """Every schedule that can be used: the package's own, the registered ones, and the
    third-party ones that load (each is tried once, which imports torch if there are any)."""
    for entry_point in _third_party():
        _try_load(entry_point)
    own = [name for name, ep in _read_entry_points().items() if _is_own(ep)]
    return sorted((set(own) | set(_registered) | set(_loaded)) - set(_broken))


def broken() -> dict[str, str]:
    """Third-party schedules that fail to load: name -> the reason, naming the package."""
    for entry_point in _third_party():
        _try_load(entry_point)
    return dict(sorted(_broken.items()))


def _own_spec(name: str):
    """The spec of one of the package's own names, found without reading the entry points
    (``importlib.metadata`` scans every installed distribution: a good part of the preview's
    time budget). The package declares these names itself, in its pyproject.toml."""
    from . import specs

    return None if name in _registered else specs.by_name(name)


def has(name: str) -> bool:
    """Whether ``name`` is registered or declared (and not known to be broken), loading nothing."""
    if _own_spec(name) is not None:
        return True
    return name in _registered or (name in _read_entry_points() and name not in _broken)


def get(name: str, flag: str = "--lr_scheduler"):
    """The scheduler class registered as ``name``, for training: the class itself for the
    package's own and registered names, a ``Guarded`` class for a third-party one. Raises
    UnknownSchedule (listing the close names) for a name that is unknown or fails to load."""
    if name in _registered:
        return _registered[name]
    entry_point = _read_entry_points().get(name)
    if entry_point is not None:
        cls = _try_load(entry_point)
        if cls is not None:
            return cls if _is_own(entry_point) else Guarded(cls, entry_point, flag)
    raise UnknownSchedule(unknown_message(name, flag))


def spec(name: str, flag: str = "--lr_scheduler"):
    """What the preview needs of ``name``: ``settings(**kwargs)``, ``check(settings)``,
    ``keys()``, ``pure_curve(settings)``. The package's own names give their ``specs`` class,
    importing no torch; a registered class is itself; a third-party name gives its ``Guarded``
    class (loading it imports torch). Raises UnknownSchedule like ``get``."""
    own = _own_spec(name)
    if own is not None:
        return own
    if name not in _registered:
        entry_point = _read_entry_points().get(name)
        if entry_point is not None and _is_own(entry_point):
            from . import specs

            found = specs.by_class_name(entry_point.value[len(OWN) :])
            if found is not None:
                return found
    return get(name, flag)


def unknown_message(name: str, flag: str, also: tuple[str, ...] | list[str] = ()) -> str:
    """One line, English / 日本語: the flag, the name, the close names among ours (and ``also``,
    e.g. the stock names the host accepts), every name that can be used, and the third-party
    ones that fail to load, apart."""
    known = names()
    candidates = sorted(set(known) | set(also))
    close = difflib.get_close_matches(name, candidates, n=3, cutoff=0.5)
    hint = f" Did you mean: {', '.join(close)}?" if close else ""
    hint_ja = f" 近い名前: {', '.join(close)}" if close else ""
    failing = broken()
    if name in failing:
        hint = f" It is installed but does not load: {failing[name]}.{hint}"
        hint_ja = f" インストールされていますが読み込めません: {failing[name]}。{hint_ja}"
    elif failing:
        hint += f" (not loadable: {', '.join(failing)})"
        hint_ja += f"(読み込めないもの: {', '.join(failing)})"
    listed = ", ".join(candidates)
    return f"{flag}: unknown schedule {name!r}.{hint} Known: {listed} / {flag}: スケジューラ {name!r} はありません。{hint_ja} 使えるもの: {listed}"


def _one_line(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())


def _try_load(entry_point):
    """The class behind an entry point, or None if it fails to load
    (the reason goes to ``broken()``; one broken plugin never hides the others)."""
    name = entry_point.name
    if name in _loaded:
        return _loaded[name]
    if name in _broken:
        return None
    from .schedulers import FloorScheduler

    try:
        cls = entry_point.load()
        if not (isinstance(cls, type) and issubclass(cls, FloorScheduler)):
            raise TypeError(f"{entry_point.value} is not a sdsched_plugin.schedulers.FloorScheduler subclass")
    except Exception as error:
        _broken[name] = f"{entry_point.value} (package {package_of(entry_point)}): {_one_line(error)}"
        return None
    _loaded[name] = cls
    return cls


class Guarded:
    """A third-party schedule class that behaves like the class (attributes, ``cls(optimizer,
    **kwargs)``), with every call that runs its code guarded: an exception other than
    ``options.OptionError`` becomes a ScheduleError naming the schedule and its package. Curves it
    returns are guarded the same way at each step. ``.cls`` is the class itself."""

    _GUARDED = ("settings", "check", "keys", "curve", "pure_curve", "stock", "pure_stock")
    _CURVES = ("curve", "pure_curve", "stock", "pure_stock")

    def __init__(self, cls: type, entry_point, flag: str = "--lr_scheduler"):
        self.cls = cls
        self.entry_point = entry_point
        self.flag = flag

    def __repr__(self) -> str:
        return f"<guarded {self.cls.__module__}.{self.cls.__qualname__}>"

    def __getattr__(self, attr):
        value = getattr(self.cls, attr)
        if attr not in self._GUARDED or not callable(value):
            return value

        def guarded(*args, **kwargs):
            result = self._run(f"{attr}()", value, *args, **kwargs)
            return self._guard_curve(result) if attr in self._CURVES and callable(result) else result

        return guarded

    def __call__(self, *args, **kwargs):
        return self._run("its constructor", self.cls, *args, **kwargs)

    def _guard_curve(self, curve):
        def multiplier(step):
            return self._run(f"its curve at step {step}", curve, step)

        return multiplier

    def _run(self, what: str, function, *args, **kwargs):
        from .options import OptionError

        try:
            return function(*args, **kwargs)
        except OptionError:
            raise
        except Exception as error:
            name, package = self.entry_point.name, package_of(self.entry_point)
            detail = _one_line(error)
            raise ScheduleError(
                f"{self.flag}: schedule {name!r} from package {package} ({self.entry_point.value}) failed in {what}: {detail}"
                f" / スケジューラ {name!r}(パッケージ {package})でエラー: {detail}"
            ) from error
