"""The import rules of `src/reelgate`, read from the source with `ast` (docs/architecture.md, Layering).

Every module belongs to a unit (a top-level package such as `tasks`, or a top-level module such as `config`).
Units are ranked from the entry points down to the ground floor; a module may import its own unit and any
unit ranked below it, never one ranked above or beside it. Imports inside functions count like any other:
a lazy import is still a dependency. A strict order makes a package-level cycle impossible.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

# Highest first. Units on one line are separate units of one layer, listed in the order they may use each
# other (the one on the left may import the ones on its right).
LAYERS: list[list[str]] = [
    # Entry points, and the one place that wires everything. `console` holds the web console's static files
    # (no Python): api serves them, and they import nothing.
    ["cli", "app", "api", "console", "resources"],
    ["tasks", "files", "accounts", "webhooks"],  # domain services, each the owner of its tables' SQL
    ["queue"],  # claims, leases, heartbeats, fenced worker writes, retries, the job runner
    ["engines", "media", "egress", "storage"],  # what does the work and talks to the outside
    ["background", "db", "backoff", "metrics", "logs", "errors", "config"],  # the ground floor
]
ORDER: list[str] = [unit for layer in LAYERS for unit in layer]
RANK: dict[str, int] = {unit: index for index, unit in enumerate(ORDER)}


@dataclass(frozen=True)
class Violation:
    module: str
    line: int
    imported: str
    reason: str

    def __str__(self) -> str:
        return f"{self.module}:{self.line} imports {self.imported}: {self.reason}"


def unit_of(module: str, package: str) -> str | None:
    """`reelgate.tasks.service` -> `tasks`; the package root itself (`reelgate`, its __version__) -> None."""
    parts = module.split(".")
    if parts[0] != package or len(parts) == 1:
        return None
    return parts[1]


def module_name(path: Path, root: Path) -> str:
    relative = path.relative_to(root.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
    return found


def find_violations(root: Path) -> list[Violation]:
    """Every import under the package at `root` that breaks the order, or names a unit with no rank."""
    package = root.name
    violations: list[Violation] = []
    for path in sorted(root.rglob("*.py")):
        module = module_name(path, root)
        source_unit = unit_of(module, package)
        tree = ast.parse(path.read_text(), filename=str(path))
        for line, target in imported_modules(tree, module, path.name == "__init__.py"):
            target_unit = unit_of(target, package)
            if target_unit is None or target_unit == source_unit:
                continue
            if source_unit is None:
                continue  # the package root may re-export anything
            if source_unit not in RANK:
                violations.append(Violation(module, line, target, f"{source_unit!r} has no place in LAYERS"))
            elif target_unit not in RANK:
                violations.append(Violation(module, line, target, f"{target_unit!r} has no place in LAYERS"))
            elif RANK[target_unit] <= RANK[source_unit]:
                violations.append(
                    Violation(module, line, target, f"{source_unit} may not use {target_unit} (upward or sideways)")
                )
    return violations
