"""Every public name, imported from the place the README documents (section "Public names"): the
restructure into subpackages must not break a user's import, a third-party schedule or an entry
point installed by an older version."""

import importlib
import subprocess
import sys

import pytest

PUBLIC = {
    "sdsched_plugin": ["__version__", "LinearFloor", "CosineFloor", "CosineWithRestartsFloor", "PolynomialFloor", "RexFloor", "FloorScheduler", "install", "uninstall"],
    "sdsched_plugin.schedulers": ["LinearFloor", "CosineFloor", "CosineWithRestartsFloor", "PolynomialFloor", "RexFloor", "FloorScheduler"],
    "sdsched_plugin.musubi": ["install", "is_installed"],
    "sdsched_plugin.cli": ["main"],
}
SCHEDULES = {
    "linear_floor": "LinearFloor",
    "cosine_floor": "CosineFloor",
    "cosine_with_restarts_floor": "CosineWithRestartsFloor",
    "polynomial_floor": "PolynomialFloor",
    "rex_floor": "RexFloor",
}


@pytest.mark.parametrize("module, name", [(module, name) for module, names in PUBLIC.items() for name in names])
def test_public_name_imports_from_its_documented_place(module, name):
    assert getattr(importlib.import_module(module), name) is not None


def test_the_classes_are_one_class_wherever_imported():
    import sdsched_plugin
    from sdsched_plugin import schedulers
    from sdsched_plugin.schedule import schedulers as real

    for name in PUBLIC["sdsched_plugin.schedulers"]:
        assert getattr(sdsched_plugin, name) is getattr(schedulers, name) is getattr(real, name)
    for name in SCHEDULES.values():
        assert issubclass(getattr(schedulers, name), schedulers.FloorScheduler)


def test_the_entry_points_name_the_classes():
    """The entry-point group third-party packages register in, with the package's own four names."""
    from importlib.metadata import entry_points

    from sdsched_plugin import schedulers

    found = {ep.name: ep for ep in entry_points(group="sdsched_plugin.schedules")}
    for name, cls in SCHEDULES.items():
        assert found[name].load() is getattr(schedulers, cls)
        assert found[name].load().name == name


def test_the_package_import_stays_free():
    """``import sdsched_plugin`` (what sd-scripts does for the dotted --lr_scheduler_type form) loads
    no torch and no submodule until a public name is read; reading one loads its module."""
    code = (
        "import sys, sdsched_plugin; print(sorted(m for m in sys.modules if m.startswith('sdsched_plugin') or m == 'torch'));"
        "sdsched_plugin.CosineWithRestartsFloor; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == ["['sdsched_plugin']", "True"]


def test_unknown_public_name_is_an_attribute_error():
    import sdsched_plugin

    with pytest.raises(AttributeError, match="has no attribute 'CosineFlor'"):
        sdsched_plugin.CosineFlor
