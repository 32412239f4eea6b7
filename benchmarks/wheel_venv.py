"""The venv every benchmark runs the plugin in: what a user gets from ``pip install``.

A fresh venv (``python -m venv --without-pip``) gets the wheel built from the checkout, installed
with ``pip install --no-deps --no-index --target <its site-packages>`` (so the byte code is
compiled, as pip does for users). Named sets of files can then be moved out of and back into
its site-packages between runs (``SitePackages.only``), so one venv is timed before and after
the install:

- ``wheel``: what that install added (the package, its dist-info, ``sdsched_plugin.pth``);
- ``floor``: a one-line ``.pth`` importing an empty (compiled) package: the least any startup
  hook that imports code can cost;
- ``setuptools``: setuptools' ``distutils-precedence.pth`` and ``_distutils_hack``, copied from
  the running venv for scale (most training venvs carry them);
- ``deps``: a ``.pth`` with the running venv's site-packages as a plain path line, for torch and
  diffusers. A directory added that way is not scanned for ``.pth`` files, so the running venv's
  own (editable) copy of the plugin stays inactive and ``sdsched_plugin`` is the wheel's.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

DEPS_PTH = "_sdsched_bench_deps.pth"
FLOOR = "_sdsched_bench_floor"


class SitePackages:
    """Moves named sets of files into or out of site-packages. Renames only: no file is
    rewritten, so the byte-code caches stay valid."""

    def __init__(self, purelib: Path, stash: Path, sets: dict[str, list[str]]):
        self.purelib, self.stash, self.sets = purelib, stash, sets
        self.present = {name: True for name in sets}
        stash.mkdir(exist_ok=True)

    def only(self, *wanted: str) -> None:
        for name, files in self.sets.items():
            if self.present[name] != (name in wanted):
                src, dst = (self.stash, self.purelib) if name in wanted else (self.purelib, self.stash)
                for file in files:
                    os.rename(src / file, dst / file)
                self.present[name] = name in wanted


@dataclass
class Venv:
    python: Path
    purelib: Path
    wheel: Path
    packages: SitePackages


def build_wheel(source: Path, work: Path) -> Path:
    dist = work / "dist"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(dist), str(source)],
        check=True,
    )
    return next(dist.glob("sdsched_plugin-*.whl"))


def make_venv(work: Path) -> tuple[Path, Path]:
    """(python, purelib) of a fresh venv without pip."""
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    code = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    return python, Path(subprocess.check_output([str(python), "-c", code], text=True).strip())


def install(wheel: Path, purelib: Path) -> list[str]:
    """Install the wheel; return the names it added to site-packages."""
    before = set(os.listdir(purelib))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(purelib), str(wheel)],
        check=True,
    )
    return sorted(set(os.listdir(purelib)) - before)


def copy_setuptools_hook(purelib: Path) -> list[str]:
    """setuptools' startup hook from the running venv, if it has one."""
    for directory in map(Path, site.getsitepackages()):
        pth, hack = directory / "distutils-precedence.pth", directory / "_distutils_hack"
        if pth.is_file() and hack.is_dir():
            shutil.copy2(pth, purelib / pth.name)
            shutil.copytree(hack, purelib / hack.name)
            return [pth.name, hack.name]
    return []


def make_floor(python: Path, purelib: Path) -> list[str]:
    """The ``floor`` set: ``import _sdsched_bench_floor`` of an empty package, byte code compiled."""
    (purelib / FLOOR).mkdir()
    (purelib / FLOOR / "__init__.py").write_text("")
    subprocess.run([str(python), "-m", "compileall", "-q", str(purelib / FLOOR)], check=True)
    (purelib / f"{FLOOR}.pth").write_text(f"import {FLOOR}\n")
    return [FLOOR, f"{FLOOR}.pth"]


def prepare(source: Path, work: Path) -> Venv:
    wheel = build_wheel(source, work)
    python, purelib = make_venv(work)
    sets = {"wheel": install(wheel, purelib), "floor": make_floor(python, purelib), "setuptools": copy_setuptools_hook(purelib)}
    (purelib / DEPS_PTH).write_text("\n".join(site.getsitepackages()) + "\n")
    sets["deps"] = [DEPS_PTH]
    packages = SitePackages(purelib, work / "stash", {name: files for name, files in sets.items() if files})
    packages.only("wheel")
    return Venv(python, purelib, wheel, packages)
