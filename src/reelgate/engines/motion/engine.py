"""MotionEngine: the Engine protocol over `camera` (one image) and `morph` (two images).

No weights, no network, no randomness: `job.seed` has nothing to seed, and the same job always
renders the same frames. Frames are produced and encoded one at a time, so memory does not grow
with the duration.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from reelgate.engines.base import OUTPUT_FPS, Availability, EngineResult, Job, JobCancelled, RGBImage, RunContext
from reelgate.engines.motion.camera import camera_frames, camera_move_from_prompt
from reelgate.engines.motion.morph import morph_frames, plan_morph
from reelgate.media.framing import fit_to_frame, output_size
from reelgate.media.video import VideoWriter

# Share of the progress bar given to flow estimation, which runs before the first frame.
_FLOW_PROGRESS_SHARE = 0.05
# Measured at 720p on 2 shared cores with a 9 MP upload: 5 s renders in 2-3 s, 10 s in 3-6 s, the
# two-image morph being the slower; x264 takes about half of it. The guess leans to the slow side.
_SETUP_S_AT_720P = 0.3
_FRAME_S_AT_720P = 0.025


class MotionEngine:
    name: str = "motion"

    def __init__(self, short_side_px: int = 720) -> None:
        if short_side_px <= 0:
            raise ValueError(f"short_side_px must be positive, got {short_side_px}")
        self.short_side_px = short_side_px

    def availability(self) -> Availability:
        return Availability(ok=True)

    def estimate_seconds(self, duration_s: int) -> float:
        pixels_vs_720p = (self.short_side_px / 720) ** 2
        frames = duration_s * OUTPUT_FPS
        return round((_SETUP_S_AT_720P + frames * _FRAME_S_AT_720P) * pixels_vs_720p, 1)

    def run(self, job: Job, ctx: RunContext, output_path: Path) -> EngineResult:
        if not 1 <= len(job.images) <= 2:
            raise ValueError(f"the motion engine takes 1 or 2 images, got {len(job.images)}")
        width, height = output_size(job.aspect_ratio, self.short_side_px)
        count = job.frame_count
        _check(ctx)
        info: dict[str, str | int | float | bool]
        if len(job.images) == 1:
            move = camera_move_from_prompt(job.prompt)
            frames = camera_frames(job.images[0], move, width, height, count)
            info = {"method": "camera_move", "camera_move": move.label}
            done_before_frames = 0.0
        else:
            frames, info = _morph(job.images[0], job.images[1], width, height, count)
            done_before_frames = _FLOW_PROGRESS_SHARE
            ctx.report_progress(done_before_frames)
            _check(ctx)
        with VideoWriter(output_path, width, height, job.fps) as writer:
            for index, frame in enumerate(frames):
                _check(ctx)
                writer.write(frame)
                ctx.report_progress(done_before_frames + (1.0 - done_before_frames) * (index + 1) / count)
        return EngineResult(video_path=output_path, width=width, height=height, frames=count, fps=job.fps, info=info)


def _morph(
    first: RGBImage, last: RGBImage, width: int, height: int, count: int
) -> tuple[Iterator[RGBImage], dict[str, str | int | float | bool]]:
    a = fit_to_frame(first, width, height)
    b = fit_to_frame(last, width, height)
    plan = plan_morph(a, b)
    return morph_frames(a, b, plan, count), {"method": plan.method, **plan.info}


def _check(ctx: RunContext) -> None:
    if ctx.cancelled():
        raise JobCancelled()
