"""The import rules of docs/ARCHITECTURE.md, checked on the source: every ``gatrec`` import (also inside
functions and under TYPE_CHECKING) goes to a room of a lower layer or stays in its own room."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "gatrec"

# Lowest first. A room may import rooms of lower layers only; the rooms of one layer are independent.
LAYERS: list[set[str]] = [
    {"__init__", "errors"},  # the base layer: errors, then log, then fsutil and threads
    {"log"},
    {"fsutil", "threads"},
    {"data"},
    {"graph"},
    {"features"},
    {"models"},
    {"evaluate"},
    {"train"},
    {"tracking"},
    {"registry"},
    {"serve", "sweep", "cloud"},
    {"workflow"},
    {"cli"},
    {"__main__"},
]
LEVEL = {room: i for i, rooms in enumerate(LAYERS) for room in rooms}
# Models get item inputs passed in (gatrec.models.base.ItemInputs): they never load or build them.
MODELS_MAY_NOT = ("gatrec.features", "gatrec.graph.knn", "gatrec.graph.interactions")


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules() -> list[tuple[str, Path]]:
    out = []
    for f in sorted(PACKAGE.rglob("*.py")):
        parts = f.relative_to(PACKAGE.parent).with_suffix("").parts
        out.append((".".join(parts).removesuffix(".__init__"), f))
    return out


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module)] + [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return [(line, name) for line, name in found if name == "gatrec" or name.startswith("gatrec.")]


def test_every_room_has_a_layer():
    rooms = {_room(mod) for mod, _ in _modules()}
    assert rooms <= set(LEVEL), f"rooms without a layer in docs/ARCHITECTURE.md: {sorted(rooms - set(LEVEL))}"


def violations(module: str, path: Path) -> list[str]:
    src = _room(module)
    bad = []
    for line, name in _imports(path):
        dst = _room(name)
        if dst != src and dst in LEVEL and LEVEL[dst] >= LEVEL[src]:
            bad.append(f"{path.name}:{line} imports {name} ({dst} is not below {src})")
        if src == "models" and name.startswith(MODELS_MAY_NOT):
            bad.append(f"{path.name}:{line} imports {name} (models get their inputs passed in)")
    return bad


@pytest.mark.parametrize("module,path", _modules(), ids=[m for m, _ in _modules()])
def test_imports_follow_the_layers(module: str, path: Path):
    assert not (bad := violations(module, path)), "\n".join(bad)


def test_the_rule_catches_violations(tmp_path: Path):
    """The checker itself: a model importing the feature store and, inside a function, serving code."""
    f = tmp_path / "m.py"
    f.write_text("from gatrec.features.store import load_knn\n\ndef g():\n    import gatrec.serve.topk\n"
                 "    from gatrec.graph import knn\n")
    bad = violations("gatrec.models.m", f)
    assert any("gatrec.features.store (models get" in b for b in bad)
    assert any("gatrec.serve.topk (serve is not below models)" in b for b in bad)
    assert any("gatrec.graph.knn (models get" in b for b in bad)
    assert violations("gatrec.cli.m", f) == []
