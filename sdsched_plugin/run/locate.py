"""Where the trainers are: one finder for sd-scripts and one for musubi-tuner, used by the preview and
by ``sdsched doctor`` alike, so both always pick the same checkout. Standard library only; nothing
is imported from the trainers (``importlib.util.find_spec`` only looks).

sd-scripts, in this order: the pasted training script's folder, ``SD_SCRIPTS_DIR``, the current
folder (the sd-scripts folder), the current folder's ``sd-scripts/`` (the kohya_ss folder), then an
installed ``library`` package (sd-scripts' requirements.txt installs itself with ``-e .``). A folder
counts when it holds ``library/train_util.py``. musubi-tuner likewise with ``MUSUBI_TUNER_DIR``,
``musubi-tuner/`` and the ``musubi_tuner`` package.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Found:
    kind: str  # "sd-scripts" or "musubi-tuner"
    root: Path | None  # the folder to put first on sys.path (None: importable as installed)
    home: Path  # the checkout: its scripts and its version
    how: str  # where it was found, for the doctor's line


@dataclass(frozen=True)
class BadVariable:
    """An environment variable set to a folder that is not the trainer's."""

    variable: str
    value: str


def _is_sd_scripts(folder: Path) -> bool:
    return (folder / "library" / "train_util.py").is_file()


def musubi_root(folder: Path) -> Path | None:
    """The folder that holds the ``musubi_tuner`` package (``src/`` since v0.2.0), or the folder of
    the flat layout before it (``hv_train_network.py`` at the top)."""
    for root in (folder / "src", folder):
        if (root / "musubi_tuner" / "__init__.py").is_file() or (root / "musubi_tuner" / "hv_train_network.py").is_file():
            return root
    if (folder / "hv_train_network.py").is_file():
        return folder
    return None


def package_dir(name: str) -> Path | None:
    """Where an installed top-level package is, without importing it."""
    import importlib.util  # only here: the finders' other paths need none of it

    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None
    locations = list(getattr(spec, "submodule_search_locations", None) or []) if spec else []
    return Path(locations[0]) if locations else None


def _candidates(script: Path | None, variable: str, subfolder: str, is_home) -> tuple[list[tuple[Path, str]], list[BadVariable]]:
    candidates, bad = [], []
    if script is not None:
        candidates.append((script.expanduser().resolve().parent, "the training script's folder"))
    value = os.environ.get(variable)
    if value:
        if is_home(Path(value).expanduser()):
            candidates.append((Path(value).expanduser(), variable))
        else:
            bad.append(BadVariable(variable, value))
    candidates += [(Path.cwd(), "the current folder"), (Path.cwd() / subfolder, f"the current folder's {subfolder}/")]
    return candidates, bad


def find_sd_scripts(script: Path | None = None) -> tuple[Found | None, list[BadVariable]]:
    candidates, bad = _candidates(script, "SD_SCRIPTS_DIR", "sd-scripts", _is_sd_scripts)
    for folder, how in candidates:
        if _is_sd_scripts(folder):
            return Found("sd-scripts", folder.resolve(), folder.resolve(), how), bad
    library = package_dir("library")
    if library is not None and (library / "train_util.py").is_file():
        return Found("sd-scripts", None, library.parent, "installed in this Python"), bad
    return None, bad


def find_musubi() -> tuple[Found | None, list[BadVariable]]:
    candidates, bad = _candidates(None, "MUSUBI_TUNER_DIR", "musubi-tuner", lambda folder: musubi_root(folder) is not None)
    for folder, how in candidates:
        root = musubi_root(folder)
        if root is not None:
            return Found("musubi-tuner", root.resolve(), folder.resolve(), how), bad
    package = package_dir("musubi_tuner")
    if package is not None:
        home = package.parent.parent if package.parent.name == "src" else package.parent
        return Found("musubi-tuner", None, home, "installed in this Python"), bad
    return None, bad
