"""Sizes and frame counts for the diffusion engines (docs/engines/diffusion.md).

Size: each model generates on its own grid (Wan: multiples of 16, LTX-Video: multiples of 32), at about the
pixel count of the 16:9 frame at the configured short side. `generation_size` picks, per aspect ratio, the
grid size nearest to the output frame; the generated frames are then centre-cropped to the exact ratio and
scaled to the output size (`media.framing.fit_to_frame`), so the crop is a few pixels at most.

Frames: a model takes `k * t + 1` frames (t = its VAE's temporal compression: Wan 4, LTX-Video 8) at its own
frame rate (Wan 16 fps, LTX-Video 24 fps), up to its longest span (Wan 81 frames, LTX-Video 257). A job needs
`duration * model_fps + 1` model frames; when that is longer than the span:
- "chain" (default): several segments, each starting from the last frame of the one before (keyframe
  chaining); the job's last image, if any, conditions the end of the last segment. Real motion for the whole
  duration, at the cost of one run per segment, and a possible change of motion at the seam.
- "stretch": one run at the longest span, played over the whole duration (a lower effective frame rate, i.e.
  slower motion), for the cost of one run.
The model frames are then resampled to `duration * 24` output frames (`resample_positions`): the first output
frame is the first model frame and the last is the last, in between linear blends of the two nearest.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from reelgate.media.framing import output_size

LongVideo = Literal["chain", "stretch"]


def _nearest_multiple(value: float, multiple: int) -> int:
    # Ties go down: the models' trained sizes are upper bounds (LTX-Video: 720 -> 704, not 736).
    return max(multiple, multiple * math.ceil(value / multiple - 0.5))


def generation_size(aspect_ratio: str, short_side_px: int, multiple: int) -> tuple[int, int]:
    """(width, height) on the model's grid nearest to the output frame of that ratio and short side."""
    if multiple <= 0:
        raise ValueError(f"multiple must be positive, got {multiple}")
    width, height = output_size(aspect_ratio, short_side_px)
    return _nearest_multiple(width, multiple), _nearest_multiple(height, multiple)


def valid_frame_count(frames: int, temporal_ratio: int) -> int:
    """The smallest `k * temporal_ratio + 1` that is at least `frames` (and at least 1 + temporal_ratio)."""
    if temporal_ratio <= 0:
        raise ValueError(f"temporal ratio must be positive, got {temporal_ratio}")
    k = max(1, math.ceil((frames - 1) / temporal_ratio))
    return k * temporal_ratio + 1


@dataclass(frozen=True)
class FramePlan:
    # Model frames per segment, each a valid count; segments after the first share their first frame with
    # the previous segment's last one (it is their condition), so it is kept once.
    segment_frames: tuple[int, ...]
    strategy: str  # "single" | "chain" | "stretch"

    @property
    def total_frames(self) -> int:
        return self.segment_frames[0] + sum(n - 1 for n in self.segment_frames[1:])


def plan_frames(
    duration_s: int, model_fps: int, max_frames: int, temporal_ratio: int, long_video: LongVideo
) -> FramePlan:
    if duration_s <= 0 or model_fps <= 0:
        raise ValueError(f"duration and fps must be positive, got {duration_s} s at {model_fps} fps")
    longest = (max_frames - 1) // temporal_ratio * temporal_ratio + 1
    if longest < temporal_ratio + 1:
        raise ValueError(f"max_frames {max_frames} is below the model's shortest clip ({temporal_ratio + 1})")
    intervals = duration_s * model_fps
    if intervals + 1 <= longest:
        return FramePlan((valid_frame_count(intervals + 1, temporal_ratio),), "single")
    if long_video == "stretch":
        return FramePlan((longest,), "stretch")
    segments = math.ceil(intervals / (longest - 1))
    per_segment = valid_frame_count(math.ceil(intervals / segments) + 1, temporal_ratio)
    return FramePlan((per_segment,) * segments, "chain")


def resample_positions(source_frames: int, output_frames: int) -> npt.NDArray[np.float64]:
    """Fractional source index of each output frame: first to first, last to last, evenly in between."""
    if source_frames < 1 or output_frames < 1:
        raise ValueError(f"frame counts must be positive, got {source_frames} -> {output_frames}")
    if output_frames == 1:
        return np.zeros(1)
    return np.linspace(0.0, source_frames - 1, output_frames)


def blend_at(frames: list[npt.NDArray[np.uint8]], position: float) -> npt.NDArray[np.uint8]:
    """The frame at a fractional index: a linear blend of its two neighbours (exact at whole indices)."""
    low = min(math.floor(position), len(frames) - 1)
    weight = position - low
    if weight < 1e-6 or low == len(frames) - 1:
        return frames[low]
    mixed = frames[low].astype(np.float32) * (1.0 - weight) + frames[low + 1].astype(np.float32) * weight
    return np.asarray(np.clip(np.rint(mixed), 0, 255), dtype=np.uint8)
