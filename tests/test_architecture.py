"""The design holds: imports run down the layers, and only artifacts.py spells a stage's file names.

Both checks read the source with ``ast`` (function-level imports included), so a new module is
checked the moment it is added.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from cardioseg import artifacts

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "cardioseg"

LAYERS: list[set[str]] = [
    {"errors", "anatomy"},
    {"fileio", "config"},
    {"plan"},
    {"artifacts", "runtime", "project"},
    {"data"},
    {"models"},
    {"postprocess", "clinical"},
    {"viz"},
    {"planning"},
    {"training", "inference"},
    {"evaluation", "pacs"},
    {"report", "sweep", "app"},
    {"cli"},
]
LAYER_OF = {room: n for n, rooms in enumerate(LAYERS) for room in rooms}


def _room(path: Path) -> str:
    parts = path.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _imported_rooms(path: Path) -> set[str]:
    rooms = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
            [node.module] if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 else [])
        for name in names:
            parts = name.split(".")
            if parts[0] == "cardioseg" and len(parts) > 1:
                rooms.add(parts[1])
    return rooms


MODULES = sorted(p for p in PACKAGE.rglob("*.py") if p.name != "__init__.py" or p.parent != PACKAGE)


def test_every_room_has_a_layer() -> None:
    assert {_room(p) for p in MODULES} <= set(LAYER_OF), "add the new room to LAYERS"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_down_the_layers(path: Path) -> None:
    room = _room(path)
    upward = sorted(r for r in _imported_rooms(path) if r != room and LAYER_OF[r] >= LAYER_OF[room])
    assert not upward, f"{path.relative_to(PACKAGE)} ({room}, layer {LAYER_OF[room]}) imports {upward}"


def _stage_file_names() -> set[str]:
    """Every file name the artifacts module defines (from its classes' properties and constants)."""
    root = Path("/x")
    names = {artifacts.CONFIG_FILE}
    for cls in (artifacts.PreparedFiles, artifacts.RunFiles, artifacts.EvaluationFiles, artifacts.ZooFiles):
        instance = cls(root)
        for attr, value in vars(cls).items():
            if isinstance(value, property):
                path = getattr(instance, attr)
                if isinstance(path, Path) and path != root:
                    names.add(path.name)
    prediction = artifacts.PredictionFiles(root)
    names |= {prediction.table.name, prediction.mask("").name, prediction.overlay("").name}
    return {n for n in names if "." in n}


def test_only_artifacts_spells_the_stages_file_names() -> None:
    names = _stage_file_names()
    assert {"dataset.json", "model.safetensors", "summary.json", "_mask.png"} <= names
    # Raw-data formats that happen to share a name (an MSD folder's own dataset.json) are read by readers.
    allowed = {PACKAGE / "artifacts.py", PACKAGE / "data" / "readers" / "msd.py"}
    offenders = []
    for path in MODULES:
        if path in allowed:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in names:
                offenders.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.value!r}")
    # The sweep's own report and the app's page are their stage's own outputs, not another stage's.
    offenders = [o for o in offenders if not o.startswith(("sweep/writeup.py", "app/server.py"))]
    assert not offenders, offenders
