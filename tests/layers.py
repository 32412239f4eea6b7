"""The package's plan, as data: which layer each module belongs to, and the imports between them.

One job: say where a module stands and read the imports of every module from its source (``ast``,
nothing is imported or run), so that the rule "an import never runs back up a layer" is checked
(tests/test_layers.py) and the picture in docs/architecture.md is drawn from the code:
``python tests/layers.py > docs/architecture.md``. Standard library only.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

PACKAGE = "sdsched_plugin"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

# Bottom to top. A module may import from its own layer (where the order inside it says so) and
# from the layers below it, never from above. Inside ``schedule`` the order is the order below too.
LAYERS = (
    ("schedule: pure", ("schedule", "schedule.options", "schedule.param_groups", "schedule.floor",
                        "schedule.text_encoder", "schedule.cycles", "schedule.curves", "schedule.custom",
                        "schedule.stock", "schedule.specs", "schedule.steps")),
    ("schedule: torch", ("schedule.schedulers",)),
    ("schedule: registry", ("schedule.registry",)),
    ("schedule: what the flags mean", ("schedule.arguments", "schedule.requested", "schedule.saved")),
    ("hosts", ("hosts.",)),
    ("run", ("run.",)),
    ("commands", ("commands.",)),
    ("entry points", ("cli", "schedulers", "musubi", "__init__")),
)
# Pairs that share a layer but must not know each other.
APART = (("commands.preview", "commands.doctor"),)


@dataclass(frozen=True)
class Import:
    source: str  # module name inside the package, e.g. "commands.preview"
    target: str
    line: int
    lazy: bool  # inside a function: runs only when that function does


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(path): path for path in sorted(ROOT.rglob("*.py"))}


def layer_of(name: str) -> int:
    for index, (_, members) in enumerate(LAYERS):
        for member in members:
            if name == member or (member.endswith(".") and name.startswith(member)) or name == member.rstrip("."):
                return index
    raise LookupError(f"{name} belongs to no layer: add it to LAYERS in tests/layers.py")


def _resolve(source: str, is_package: bool, node: ast.ImportFrom | ast.Import) -> list[str]:
    """The package modules an import statement names (relative or absolute)."""
    known = modules()
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        if node.level:
            base = source.split(".") if is_package else source.split(".")[:-1]
            base = base[: len(base) - (node.level - 1)] if node.level > 1 else base
            prefix = ".".join([PACKAGE, *base, *(node.module.split(".") if node.module else [])])
        else:
            prefix = node.module or ""
        names = [prefix] + [f"{prefix}.{alias.name}" for alias in node.names]
    found = []
    for name in names:
        if name == PACKAGE or not name.startswith(PACKAGE + "."):
            continue
        inner = name[len(PACKAGE) + 1 :]
        if inner in known:
            found.append(inner)
    # "from .pkg import module" names the module, not the package's __init__
    if len(found) > 1 and found[0] in {name.rsplit(".", 1)[0] for name in found[1:]}:
        found = found[1:]
    return found


def imports() -> list[Import]:
    """Every import of a package module by a package module."""
    found = []
    for source, path in modules().items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        is_package = path.name == "__init__.py"
        lazy_lines = {
            node.lineno
            for function in ast.walk(tree) if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
            for node in ast.walk(function) if isinstance(node, (ast.Import, ast.ImportFrom))
        }  # fmt: skip
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                for target in _resolve(source, is_package, node):
                    if target != source:
                        found.append(Import(source, target, node.lineno, node.lineno in lazy_lines))
    return found


def _order_in_layer(name: str) -> int:
    members = LAYERS[layer_of(name)][1]
    return next((i for i, member in enumerate(members) if name == member), 0) if name.startswith("schedule.") else 0


def back_arrows() -> list[Import]:
    """Imports that run back up: to a higher layer, to a later module of the pure schedule layer,
    or between modules kept apart."""
    wrong = []
    for item in imports():
        source_layer, target_layer = layer_of(item.source), layer_of(item.target)
        if target_layer > source_layer:
            wrong.append(item)
        elif target_layer == source_layer and source_layer == 0 and _order_in_layer(item.target) > _order_in_layer(item.source):
            wrong.append(item)
        elif any({item.source, item.target} <= {a, b} or (item.source.startswith(a) and item.target.startswith(b)) or
                 (item.source.startswith(b) and item.target.startswith(a)) for a, b in APART):  # fmt: skip
            wrong.append(item)
    return wrong


def mermaid() -> str:
    """The layers and the imports between modules as a Mermaid flowchart, top layer first."""
    lines = ["flowchart TB"]
    by_layer: dict[int, list[str]] = {}
    for name in modules():
        if name.endswith("__init__") or "." not in name and name in ("__init__",):
            continue
        by_layer.setdefault(layer_of(name), []).append(name)
    for index in sorted(by_layer, reverse=True):
        title = LAYERS[index][0]
        lines.append(f'  subgraph L{index}["{title}"]')
        lines.extend(f'    {name.replace(".", "_")}["{name}"]' for name in by_layer[index])
        lines.append("  end")
    edges = sorted({(item.source, item.target, item.lazy) for item in imports()})
    for source, target, lazy in edges:
        if source in ("__init__",) or target.endswith("__init__"):
            continue
        arrow = "-.->" if lazy else "-->"
        lines.append(f"  {source.replace('.', '_')} {arrow} {target.replace('.', '_')}")
    return "\n".join(lines)


def page() -> str:
    """docs/architecture.md as the code draws it."""
    packages = ("__init__", "schedule", "hosts", "run", "commands")
    names = [name for name in modules() if name not in packages]
    table = "\n".join(
        f"| {index + 1} | {title} | {', '.join(f'`{name}`' for name in sorted((n for n in names if layer_of(n) == index), key=lambda n: (_order_in_layer(n), n)))} |"
        for index, (title, _) in enumerate(LAYERS)
    )
    return f"""# The house: layers of `sdsched_plugin`

Drawn from the package's own imports by `python tests/layers.py > docs/architecture.md`;
`tests/test_layers.py` fails when this page is out of date or when an import runs back up a layer.

Each layer imports only from the layers below it (numbered bottom up). Inside the pure schedule
layer the order of the table is the order of imports too. `commands.preview` and `commands.doctor`
never import each other. Dotted arrows are imports inside a function (they run only when it does).

| layer | what | modules |
|---|---|---|
{table}

```mermaid
{mermaid()}
```
"""


if __name__ == "__main__":
    print(page(), end="")
