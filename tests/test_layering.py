"""The package layering of docs/architecture.md holds, and the check itself catches what it must."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.layering import LAYERS, find_violations, imported_modules, module_name, unit_of

SRC = Path(__file__).resolve().parents[1] / "src" / "reelgate"


def test_every_import_goes_downward() -> None:
    violations = find_violations(SRC)
    assert not violations, "\n".join(str(v) for v in violations)


def test_every_unit_of_the_package_has_a_layer() -> None:
    units = {path.stem if path.is_file() else path.name for path in SRC.iterdir() if not path.name.startswith("_")}
    units = {unit for unit in units if (SRC / unit).is_dir() or (SRC / f"{unit}.py").is_file()}
    placed = {unit for layer in LAYERS for unit in layer}
    assert units - placed == set(), "give every top-level module or package a place in tests/layering.py LAYERS"


def _package(tmp_path: Path, files: dict[str, str]) -> Path:
    root = tmp_path / "reelgate"
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    for directory in [root, *[p for p in root.rglob("*") if p.is_dir()]]:
        (directory / "__init__.py").touch()
    return root


@pytest.mark.parametrize(
    "source",
    [
        "from reelgate.tasks import service\n",
        "import reelgate.tasks.service\n",
        "def later() -> None:\n    from reelgate.tasks.service import create\n",  # a lazy import is a dependency
        "from ..tasks import service\n",  # relative
    ],
)
def test_an_upward_import_is_caught(tmp_path: Path, source: str) -> None:
    root = _package(tmp_path, {"queue/worker.py": source, "tasks/service.py": "def create() -> None: ...\n"})
    violations = find_violations(root)
    assert [(v.module, unit_of(v.imported, "reelgate")) for v in violations] == [("reelgate.queue.worker", "tasks")]
    assert "queue may not use tasks" in str(violations[0])


def test_a_sideways_import_inside_a_layer_follows_the_order(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {
            "tasks/service.py": "from reelgate.accounts import ledger\n",  # left to right: allowed
            "accounts/ledger.py": "from reelgate.tasks import service\n",  # right to left: refused
        },
    )
    assert [(v.module, unit_of(v.imported, "reelgate")) for v in find_violations(root)] == [
        ("reelgate.accounts.ledger", "tasks")
    ]


def test_a_new_unit_without_a_layer_is_caught(tmp_path: Path) -> None:
    root = _package(tmp_path, {"newthing/core.py": "from reelgate.config import Settings\n"})
    (violation,) = find_violations(root)
    assert "'newthing' has no place in LAYERS" in str(violation)


def test_downward_imports_pass(tmp_path: Path) -> None:
    root = _package(
        tmp_path,
        {"api/tasks.py": "from reelgate.tasks import service\nfrom reelgate.errors import ApiError\n"},
    )
    assert find_violations(root) == []


# --- no SQL in the routers ---------------------------------------------------------------------------------

# The ORM classes may appear in routers as types (`key: CurrentKey` is an ApiKey); building or running a
# statement needs one of these, or one of the session methods below.
_SQL_MODULES = ("sqlalchemy", "reelgate.db.database")
_SESSION_METHODS = {"execute", "scalar", "scalars", "add", "flush", "merge", "refresh"}


def test_routers_hold_no_sql() -> None:
    """Routers parse, call one service and return: they never build queries, touch tables or repositories."""
    offenders = []
    for path in sorted((SRC / "api").rglob("*.py")):
        module = module_name(path, SRC)
        tree = ast.parse(path.read_text())
        for line, target in imported_modules(tree, module, path.name == "__init__.py"):
            if target.startswith(_SQL_MODULES) or target.endswith(".repository") or ".repository." in target:
                offenders.append(f"{module}:{line} imports {target}")
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and node.attr in _SESSION_METHODS:
                offenders.append(f"{module}:{node.lineno} runs a statement (.{node.attr})")
    assert not offenders, "\n".join(offenders)
