"""Video frame geometry: the allowed aspect ratios, their pixel sizes, and fitting an image into one."""

from __future__ import annotations

import math
from fractions import Fraction

import cv2
import numpy as np
import numpy.typing as npt

ASPECT_RATIOS = ("16:9", "9:16", "1:1")

_RATIO_PARTS = {"16:9": (16, 9), "9:16": (9, 16), "1:1": (1, 1)}
_TIE_ORDER = ("1:1", "16:9", "9:16")


def nearest_aspect_ratio(width: int, height: int) -> str:
    """The allowed ratio closest to width:height, measured on log ratios so 2:1 and 1:2 are equally far.

    |log(r / a)| is compared as max(r / a, a / r) in exact fractions: 4:3 and 3:4 sit exactly halfway
    between two allowed ratios, and floats would break those ties by rounding noise. Ties go to 1:1,
    which favours neither orientation.
    """
    if width <= 0 or height <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")

    def distance(name: str) -> Fraction:
        w, h = _RATIO_PARTS[name]
        quotient = Fraction(width * h, height * w)
        return max(quotient, 1 / quotient)

    return min(_TIE_ORDER, key=distance)


def output_size(aspect_ratio: str, short_side_px: int) -> tuple[int, int]:
    """(width, height) of the video, both even as yuv420p requires.

    1:1 uses the geometric mean of the 16:9 sides (720 -> 960x960): the same pixel count as the
    widescreen frame, so every ratio costs about the same to generate and holds the same detail.
    """
    if aspect_ratio not in _RATIO_PARTS:
        raise ValueError(f"unknown aspect ratio {aspect_ratio!r}; expected one of {ASPECT_RATIOS}")
    if short_side_px <= 0:
        raise ValueError(f"short side must be positive, got {short_side_px}")
    short = _even(short_side_px)
    long = _even(short * 16 / 9)
    if aspect_ratio == "16:9":
        return long, short
    if aspect_ratio == "9:16":
        return short, long
    side = _even(math.sqrt(long * short))
    return side, side


def crop_box(src_w: int, src_h: int, width: int, height: int) -> tuple[int, int, int, int]:
    """(x, y, w, h): the centred part of a src_w x src_h image with exactly width:height's shape. The web
    console's preview (console/static/framing.js) computes the same box, rounding included, and a test holds
    the two to it."""
    # Compare cross products instead of float ratios so equal ratios never crop a stray pixel.
    if src_w * height > width * src_h:
        crop_w, crop_h = max(1, round(src_h * width / height)), src_h
    else:
        crop_w, crop_h = src_w, max(1, round(src_w * height / width))
    return (src_w - crop_w) // 2, (src_h - crop_h) // 2, crop_w, crop_h


def fit_to_frame(pixels: npt.NDArray[np.uint8], width: int, height: int) -> npt.NDArray[np.uint8]:
    """Centre-crops `pixels` (H x W x 3) to width:height exactly, then resizes to width x height."""
    if pixels.ndim != 3 or pixels.shape[2] != 3:
        raise ValueError(f"expected an H x W x 3 array, got shape {pixels.shape}")
    if width <= 0 or height <= 0:
        raise ValueError(f"target size must be positive, got {width}x{height}")
    src_h, src_w = pixels.shape[:2]
    x0, y0, crop_w, crop_h = crop_box(src_w, src_h, width, height)
    cropped = pixels[y0 : y0 + crop_h, x0 : x0 + crop_w]
    if (crop_w, crop_h) == (width, height):
        return cropped.copy()
    # INTER_AREA averages the source pixels when shrinking (no aliasing); it blurs when enlarging,
    # where cubic interpolation keeps edges sharper.
    interpolation = cv2.INTER_AREA if crop_w * crop_h > width * height else cv2.INTER_CUBIC
    resized = cv2.resize(np.ascontiguousarray(cropped), (width, height), interpolation=interpolation)
    return np.asarray(resized, dtype=np.uint8)


def _even(value: float) -> int:
    # Half up rather than Python's half-to-even, so 481 -> 482 and 483 -> 484 alike.
    return max(2, 2 * math.floor(value / 2 + 0.5))
