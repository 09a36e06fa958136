"""The planner is pure: no kopf, no kubernetes client, no I/O, no clock of its own."""

from __future__ import annotations

import ast
from pathlib import Path

import elastrain.planner

PLANNER = Path(elastrain.planner.__file__).parent
FORBIDDEN_MODULES = ("kopf", "kubernetes", "aiohttp", "requests", "socket", "subprocess", "time")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module.split(".")[0])
    return found


def test_planner_modules_import_nothing_impure() -> None:
    modules = sorted(PLANNER.glob("*.py"))
    assert len(modules) >= 8
    for path in modules:
        bad = _imports(path) & set(FORBIDDEN_MODULES)
        assert not bad, f"{path.name} imports {bad}"


def test_planner_never_reads_the_clock_or_opens_files() -> None:
    for path in sorted(PLANNER.glob("*.py")):
        text = path.read_text()
        for call in ("datetime.now(", "utcnow(", "open(", "os.environ"):
            assert call not in text, f"{path.name} uses {call}"
