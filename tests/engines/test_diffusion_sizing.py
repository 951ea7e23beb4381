"""Sizes and frame counts of the diffusion engines: pure arithmetic, no torch."""

from __future__ import annotations

import numpy as np
import pytest

from reelgate.engines.diffusion.sizing import (
    blend_at,
    generation_size,
    plan_frames,
    resample_positions,
    valid_frame_count,
)


@pytest.mark.parametrize(
    ("ratio", "short", "multiple", "expected"),
    [
        ("16:9", 480, 16, (848, 480)),  # Wan 480p
        ("9:16", 480, 16, (480, 848)),
        ("1:1", 480, 16, (640, 640)),
        ("16:9", 720, 16, (1280, 720)),  # Wan 720p
        ("16:9", 480, 32, (864, 480)),  # LTX-Video
        ("16:9", 720, 32, (1280, 704)),  # ties go down: 720 is 22.5 x 32
        ("1:1", 720, 32, (960, 960)),
    ],
)
def test_generation_size_is_the_nearest_grid_size(
    ratio: str, short: int, multiple: int, expected: tuple[int, int]
) -> None:
    width, height = generation_size(ratio, short, multiple)
    assert (width, height) == expected
    assert width % multiple == 0 and height % multiple == 0


@pytest.mark.parametrize(
    ("frames", "ratio", "expected"), [(81, 4, 81), (80, 4, 81), (82, 4, 85), (121, 8, 121), (2, 8, 9)]
)
def test_valid_frame_count(frames: int, ratio: int, expected: int) -> None:
    assert valid_frame_count(frames, ratio) == expected
    assert (expected - 1) % ratio == 0


def test_plans_for_the_real_models() -> None:
    # Wan: 16 fps, 81 frames = 5 s exactly; 10 s chains two segments of 81 (161 frames) or stretches one.
    assert plan_frames(5, 16, 81, 4, "chain").segment_frames == (81,)
    ten = plan_frames(10, 16, 81, 4, "chain")
    assert ten.segment_frames == (81, 81) and ten.total_frames == 161 and ten.strategy == "chain"
    stretched = plan_frames(10, 16, 81, 4, "stretch")
    assert stretched.segment_frames == (81,) and stretched.strategy == "stretch"
    # LTX-Video: 24 fps, up to 257 frames: 5 s = 121, 10 s = 241, both in one pass (8k + 1).
    assert plan_frames(5, 24, 257, 8, "chain").segment_frames == (121,)
    assert plan_frames(10, 24, 257, 8, "chain").segment_frames == (241,)
    # A shorter LTX span chains: 241 frames over segments of at most 121.
    assert plan_frames(10, 24, 121, 8, "chain").segment_frames == (121, 121)


def test_chained_segments_cover_the_duration() -> None:
    plan = plan_frames(5, 4, 9, 4, "chain")
    assert plan.segment_frames == (9, 9, 9) and plan.total_frames == 25 >= 5 * 4 + 1
    with pytest.raises(ValueError, match="shortest clip"):
        plan_frames(5, 16, 4, 4, "chain")


def test_resample_maps_first_to_first_and_last_to_last() -> None:
    positions = resample_positions(81, 120)
    assert positions[0] == 0 and positions[-1] == 80 and len(positions) == 120
    assert np.all(np.diff(positions) > 0)


def test_blend_at_is_exact_on_whole_indices_and_linear_between() -> None:
    frames = [np.full((2, 2, 3), value, dtype=np.uint8) for value in (0, 100, 200)]
    assert blend_at(frames, 1.0)[0, 0, 0] == 100
    assert blend_at(frames, 2.0)[0, 0, 0] == 200
    assert blend_at(frames, 0.25)[0, 0, 0] == 25
