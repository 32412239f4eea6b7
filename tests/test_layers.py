"""The house's plan holds: every import of the package runs down its layers (tests/layers.py names
them), the pure schedule layer imports no torch, and the picture in docs/architecture.md is the one
the code draws today."""

import subprocess
import sys

import layers
from conftest import REPO


def test_no_import_runs_back_up_a_layer():
    wrong = [f"{i.source} imports {i.target} (line {i.line})" for i in layers.back_arrows()]
    assert wrong == []


def test_every_module_has_a_layer():
    for name in layers.modules():
        layers.layer_of(name)  # raises LookupError naming the module


def test_the_layer_check_sees_a_back_arrow(tmp_path, monkeypatch):
    """The check itself can fail: a pure module that imports a host is caught."""
    fake = tmp_path / "sdsched_plugin"
    (fake / "schedule").mkdir(parents=True)
    (fake / "hosts").mkdir()
    (fake / "schedule" / "floor.py").write_text("from ..hosts import patching\n")
    (fake / "hosts" / "patching.py").write_text("from ..schedule import floor\n")
    monkeypatch.setattr(layers, "ROOT", fake)
    assert [(i.source, i.target) for i in layers.back_arrows()] == [("schedule.floor", "hosts.patching")]


def test_the_pure_layer_imports_no_torch_when_run():
    pure = [name for name in layers.LAYERS[0][1] if name in layers.modules()]
    code = "import sys; " + "; ".join(f"import sdsched_plugin.{name}" for name in pure) + (
        "; print(sorted(m for m in ('torch', 'diffusers', 'transformers', 'numpy', 'library') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_docs_architecture_is_drawn_from_todays_imports():
    page = (REPO / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert layers.page() in page, "run: python tests/layers.py > docs/architecture.md"
