"""`reelgate generate`: run an engine on this machine, no server, and write the video."""

from __future__ import annotations

import asyncio
import signal
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import (
    BarColumn,
    Progress,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from reelgate.cli.common import console, err, fail, settings
from reelgate.config import Settings

if TYPE_CHECKING:
    from reelgate.engines.base import RGBImage


def generate(
    image: Annotated[list[str], typer.Option(help="First frame, then optionally last frame (path or URL)")],
    prompt: Annotated[str, typer.Option(help="What happens; camera words drive the motion engine")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Where to write the MP4")] = Path("out.mp4"),
    aspect_ratio: Annotated[str | None, typer.Option(help="16:9, 9:16 or 1:1 (default: nearest to the image)")] = None,
    duration: Annotated[int, typer.Option(help="5 or 10 seconds")] = 5,
    seed: Annotated[int, typer.Option(help="Seed for engines that use randomness")] = 0,
    engine_name: Annotated[str, typer.Option("--engine", help="Engine to run")] = "motion",
) -> None:
    """Run an engine locally (no server) and write the video."""
    from reelgate.engines.base import Job, JobCancelled
    from reelgate.engines.registry import build_engines
    from reelgate.media.framing import ASPECT_RATIOS, nearest_aspect_ratio

    current = settings()
    if not 1 <= len(image) <= 2:
        raise fail("give one --image (first frame) or two (first and last frame)")
    if duration not in (5, 10):
        raise fail("--duration must be 5 or 10")
    if aspect_ratio is not None and aspect_ratio not in ASPECT_RATIOS:
        raise fail(f"--aspect-ratio must be one of {', '.join(ASPECT_RATIOS)}")
    if not prompt.strip() or len(prompt) > 5000:
        raise fail("--prompt must be 1 to 5000 characters")
    try:
        engine = build_engines(current, [engine_name])[engine_name]
    except ValueError as exc:
        raise fail(str(exc)) from None
    pixels = [_load_image(current, ref, index) for index, ref in enumerate(image)]
    ratio = aspect_ratio or nearest_aspect_ratio(pixels[0].shape[1], pixels[0].shape[0])
    job = Job(task_id="local", images=pixels, prompt=prompt, aspect_ratio=ratio, duration_s=duration, seed=seed)

    with (
        tempfile.TemporaryDirectory() as scratch,
        Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=err,
        ) as progress,
    ):
        bar = progress.add_task(f"{engine_name} {ratio} {duration}s", total=1.0)
        ctx = _CliContext(Path(scratch), progress, bar)
        try:
            result = engine.run(job, ctx, output)
        except JobCancelled:
            raise fail("cancelled") from None
    console.print(
        f"wrote [bold]{output}[/bold]: {result.width}x{result.height}, {result.frames} frames at "
        f"{result.fps} fps ({', '.join(f'{k}={v}' for k, v in result.info.items())})"
    )


class _CliContext:
    def __init__(self, scratch_dir: Path, progress: Progress, bar: TaskID) -> None:
        self.scratch_dir = scratch_dir
        self._progress = progress
        self._bar = bar
        self._stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: self._stop.set())

    def report_progress(self, fraction: float) -> None:
        self._progress.update(self._bar, completed=fraction)

    def cancelled(self) -> bool:
        return self._stop.is_set()


def _load_image(settings: Settings, ref: str, index: int) -> RGBImage:
    from reelgate.media.images import ImageRejected, decode_image

    param = f"--image #{index + 1}"
    try:
        if ref.startswith(("http://", "https://", "data:")):
            return asyncio.run(_load_remote(settings, ref, param))
        path = Path(ref)
        if not path.is_file():
            raise fail(f"{param}: no such file: {ref}")
        if path.stat().st_size > settings.max_image_bytes:
            raise fail(f"{param}: larger than {settings.max_image_mb:g} MB")
        return decode_image(path.read_bytes(), max_pixels=settings.max_image_pixels, param=param).pixels
    except ImageRejected as rejected:
        raise fail(f"{rejected.param}: {rejected.message}") from None


async def _load_remote(settings: Settings, ref: str, param: str) -> RGBImage:
    from reelgate.egress.client import EgressClient
    from reelgate.media.images import load_image

    async with EgressClient(
        allow_private_networks=settings.allow_private_networks, ca_bundle=settings.egress_ca_bundle
    ) as client:
        decoded = await load_image(
            ref,
            param=param,
            client=client,
            max_bytes=settings.max_image_bytes,
            max_pixels=settings.max_image_pixels,
            timeout_s=settings.image_fetch_timeout_s,
        )
    return decoded.pixels
