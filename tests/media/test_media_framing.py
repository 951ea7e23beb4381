from __future__ import annotations

import numpy as np
import pytest

from reelgate.media.framing import ASPECT_RATIOS, fit_to_frame, nearest_aspect_ratio, output_size


@pytest.mark.parametrize(
    ("width", "height", "expected"),
    [
        (1920, 1080, "16:9"),
        (1080, 1920, "9:16"),
        (1000, 1000, "1:1"),
        (4000, 3000, "1:1"),  # exactly halfway between 1:1 and 16:9 on a log scale: ties go to 1:1
        (3000, 4000, "1:1"),
        (4001, 3000, "16:9"),
        (3000, 4001, "9:16"),
        (3999, 3000, "1:1"),
        (1400, 1000, "16:9"),  # 1.4 is past the geometric midpoint 4/3 between 1 and 16/9
        (1000, 1400, "9:16"),
        (5000, 100, "16:9"),
        (100, 5000, "9:16"),
    ],
)
def test_nearest_aspect_ratio(width: int, height: int, expected: str) -> None:
    assert nearest_aspect_ratio(width, height) == expected


def test_nearest_aspect_ratio_rejects_empty_sizes() -> None:
    with pytest.raises(ValueError):
        nearest_aspect_ratio(0, 100)


@pytest.mark.parametrize(
    ("ratio", "short", "expected"),
    [
        ("16:9", 720, (1280, 720)),
        ("9:16", 720, (720, 1280)),
        ("1:1", 720, (960, 960)),
        ("16:9", 1080, (1920, 1080)),
        ("1:1", 1080, (1440, 1440)),
        ("16:9", 480, (854, 480)),
        ("9:16", 481, (482, 856)),
    ],
)
def test_output_size(ratio: str, short: int, expected: tuple[int, int]) -> None:
    assert output_size(ratio, short) == expected


@pytest.mark.parametrize("short", [64, 100, 333, 720, 999, 2160])
def test_output_sizes_are_even(short: int) -> None:
    for ratio in ASPECT_RATIOS:
        width, height = output_size(ratio, short)
        assert width % 2 == 0 and height % 2 == 0


def test_output_size_rejects_unknown_ratio() -> None:
    with pytest.raises(ValueError):
        output_size("4:3", 720)


def striped(height: int, width: int) -> np.ndarray[tuple[int, int, int], np.dtype[np.uint8]]:
    """Columns coloured by position, so a crop's position is visible in the output."""
    pixels = np.zeros((height, width, 3), dtype=np.uint8)
    pixels[:, :, 0] = (np.arange(width) * 255 // max(1, width - 1)).astype(np.uint8)[None, :]
    pixels[:, :, 1] = (np.arange(height) * 255 // max(1, height - 1)).astype(np.uint8)[:, None]
    return pixels


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ((1000, 1000), (1280, 720)),
        ((1080, 1920), (1280, 720)),
        ((3000, 2000), (720, 1280)),
        ((400, 300), (960, 960)),
        ((720, 1280), (1280, 720)),
        ((720, 1280), (720, 1280)),
        ((90, 5000), (1280, 720)),
    ],
)
def test_fit_to_frame_shapes(source: tuple[int, int], target: tuple[int, int]) -> None:
    height, width = source
    framed = fit_to_frame(striped(height, width), *target)
    assert framed.shape == (target[1], target[0], 3)
    assert framed.dtype == np.uint8 and framed.flags["C_CONTIGUOUS"]


def test_fit_to_frame_crops_the_centre() -> None:
    # A wide source into a square: the sides go, the middle column stays in the middle.
    source = np.zeros((100, 300, 3), dtype=np.uint8)
    source[:, 100:200] = 255
    framed = fit_to_frame(source, 100, 100)
    assert (framed == 255).all()


def test_fit_to_frame_is_deterministic_and_leaves_the_input_alone() -> None:
    source = striped(777, 1333)
    before = source.copy()
    first = fit_to_frame(source, 1280, 720)
    assert np.array_equal(first, fit_to_frame(source, 1280, 720))
    assert np.array_equal(source, before)
    same_size = fit_to_frame(source[:720, :1280], 1280, 720)
    assert np.array_equal(same_size, source[:720, :1280])
    same_size[0, 0] = 1
    assert np.array_equal(source, before)


def test_fit_to_frame_rejects_non_rgb() -> None:
    with pytest.raises(ValueError):
        fit_to_frame(np.zeros((10, 10), dtype=np.uint8), 10, 10)
