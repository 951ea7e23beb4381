"""What the task use cases need from the service they run in (`reelgate.resources.Resources` provides it)."""

from __future__ import annotations

from typing import Protocol

from reelgate.engines.registry import EngineRegistry
from reelgate.files.context import FilesResources


class TasksResources(FilesResources, Protocol):
    """Everything the files use cases need (a create resolves uploaded files; the sweep purges them), and the
    engines."""

    @property
    def registry(self) -> EngineRegistry: ...

    async def serving_engines(self, *, fresh: bool = False) -> set[str]:
        """The engines some live worker advertises as available (queue/registry.py)."""
        ...
