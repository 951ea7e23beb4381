"""One warm pipeline per GPU per worker process, and one task at a time on each GPU.

Loading a 14B pipeline takes minutes and its weights fill most of a GPU, so a worker keeps the last pipeline
it used on each device and reuses it for the next task that needs the same one. Two tasks never share a GPU:
each holds the device's slot for its whole run, and a second pipeline for the same device (another engine,
other options) replaces the first rather than sitting beside it.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import Any

from reelgate.engines.base import JobCancelled

_WAIT_STEP_S = 0.25


def release_device_memory(device: str) -> None:
    """Give freed tensors back: Python first (cycles keep tensors alive), then the CUDA caching allocator."""
    gc.collect()
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()


class DeviceSlot:
    def __init__(self, device: str) -> None:
        self.device = device
        self.lock = threading.Lock()
        self.key: Hashable | None = None
        self.pipeline: Any = None
        self.loads = 0

    def pipeline_for(self, key: Hashable, load: Callable[[], Any]) -> Any:
        """The warm pipeline for `key`, loading it (and dropping another one first) if needed. Hold `lock`."""
        if self.key == key and self.pipeline is not None:
            return self.pipeline
        self.drop()
        self.pipeline = load()
        self.key = key
        self.loads += 1
        return self.pipeline

    def drop(self) -> None:
        self.pipeline = None
        self.key = None
        release_device_memory(self.device)


class PipelineCache:
    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._slots: dict[str, DeviceSlot] = {}

    def slot(self, device: str) -> DeviceSlot:
        with self._guard:
            if device not in self._slots:
                self._slots[device] = DeviceSlot(device)
            return self._slots[device]

    @contextmanager
    def hold(self, device: str, cancelled: Callable[[], bool]) -> Iterator[DeviceSlot]:
        """The device's slot, exclusively; waiting for it stops with JobCancelled when the task is cancelled."""
        slot = self.slot(device)
        while not slot.lock.acquire(timeout=_WAIT_STEP_S):
            if cancelled():
                raise JobCancelled()
        try:
            yield slot
        finally:
            slot.lock.release()


_SHARED = PipelineCache()


def shared_cache() -> PipelineCache:
    """The process-wide cache every engine of a worker shares (tests may pass their own)."""
    return _SHARED
