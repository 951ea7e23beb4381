"""The one protocol every engine implements (docs/design.md, Engines).

An engine is synchronous and CPU/GPU bound: the worker calls `run` in a thread, and the engine talks back
only through its `RunContext` (progress, cancellation). It writes one H.264/yuv420p/faststart MP4.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

RGBImage = npt.NDArray[np.uint8]  # H x W x 3, RGB, uint8

OUTPUT_FPS = 24


class JobCancelled(Exception):
    """Raised by an engine when `RunContext.cancelled()` turned true; the worker stops quietly."""


@dataclass(frozen=True)
class Job:
    task_id: str
    # Decoded images with EXIF orientation applied, at their own size; the engine frames them.
    images: list[RGBImage]
    prompt: str
    aspect_ratio: str  # "16:9" | "9:16" | "1:1", already resolved (never None here)
    duration_s: int  # 5 | 10
    seed: int
    fps: int = OUTPUT_FPS

    @property
    def frame_count(self) -> int:
        return self.duration_s * self.fps


class Cancellable(Protocol):
    def cancelled(self) -> bool:
        """True once the task was cancelled or the lease was lost; the engine raises JobCancelled."""
        ...


class RunContext(Cancellable, Protocol):
    scratch_dir: Path

    def report_progress(self, fraction: float) -> None:
        """Fraction of the work done, 0..1. Cheap: the worker batches it into its heartbeat."""


def raise_if_cancelled(ctx: Cancellable) -> None:
    """The one place an engine stops for a cancelled task or a lost lease."""
    if ctx.cancelled():
        raise JobCancelled


@dataclass
class EngineResult:
    video_path: Path
    width: int
    height: int
    frames: int
    fps: int
    # Facts about how the engine served the job, shown in `task_info` (e.g. {"method": "optical_flow"}).
    info: dict[str, str | int | float | bool] = field(default_factory=dict)


@dataclass(frozen=True)
class Availability:
    ok: bool
    reason: str = ""


@runtime_checkable
class Engine(Protocol):
    name: str

    def availability(self) -> Availability: ...

    def estimate_seconds(self, duration_s: int) -> float:
        """A fair guess of the wall time of one job, for `task_info.estimated_time` before it starts."""
        ...

    def run(self, job: Job, ctx: RunContext, output_path: Path) -> EngineResult: ...


@runtime_checkable
class KnownFrame(Protocol):
    """An engine that knows, before running, the frame it renders at an aspect ratio: it centre-crops the
    images to exactly width:height (media/framing.py fit_to_frame), so a client can preview that crop."""

    def frame_size(self, aspect_ratio: str) -> tuple[int, int]: ...
