"""Frames rendered in the encoder's own pixel format, so no frame is converted after it is made.

The encoder stores yuv420p: a full-size luma plane and two chroma planes of half the size each way.
Rendering in RGB and letting ffmpeg convert every frame costs three full-size channels per warp and a
colour conversion per frame; rendering the three YUV planes straight from A and B converted once costs
1.5 channels per warp and no conversion. The same geometry renders either layout (`Layout`): "rgb" is
one three-channel plane (what tests and benchmarks compare with true frames), "i420" the three planes
of yuv420p laid out one after another, exactly as ffmpeg reads `-pix_fmt yuv420p`.

The sources (A and B, or the framed and detailed copies of one image) are converted once, by ffmpeg
itself (`media.video.rgb_to_yuv420p`), so the first and last frames are exactly what the encoder would
have made of them in RGB. (OpenCV's own RGB -> I420 has the same coefficients but subsamples chroma by a
centred 2x2 average, which decoded back lost 1-2.5 dB against ffmpeg's on scikit-image photos.) ffmpeg's
chroma is "left" sited, as H.264 sites it by default: a chroma sample sits on the even luma columns,
half way between two luma rows (`plane_matrix`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
import numpy.typing as npt

from reelgate.media.video import rgb_to_yuv420p

Layout = Literal["rgb", "i420"]
Plane = npt.NDArray[np.uint8]


@dataclass(frozen=True)
class Planes:
    """An image as the planes it is rendered from, each with its pixels per image pixel."""

    planes: tuple[Plane, ...]
    scales: tuple[float, ...]


def source_planes(image: npt.NDArray[np.uint8], layout: Layout) -> Planes:
    """`image` (H x W x 3 RGB) in `layout`."""
    return sources_planes([image], layout)[0]


def sources_planes(images: list[npt.NDArray[np.uint8]], layout: Layout) -> list[Planes]:
    """Several images in `layout`, converted by one ffmpeg run per size. An odd size is padded by one
    replicated row or column, which lies past the image's edge and is never sampled inside it."""
    if layout == "rgb":
        return [Planes((image,), (1.0,)) for image in images]
    padded = [
        np.asarray(
            cv2.copyMakeBorder(image, 0, image.shape[0] % 2, 0, image.shape[1] % 2, cv2.BORDER_REPLICATE),
            dtype=np.uint8,
        )
        for image in images
    ]
    converted: dict[int, npt.NDArray[np.uint8]] = {}
    for shape in dict.fromkeys(image.shape for image in padded):
        indices = [index for index, image in enumerate(padded) if image.shape == shape]
        for index, frame in zip(indices, rgb_to_yuv420p([padded[i] for i in indices]), strict=True):
            converted[index] = frame
    return [Planes(split_i420(converted[index]), (1.0, 0.5, 0.5)) for index in range(len(images))]


def frame_buffer(width: int, height: int, layout: Layout) -> tuple[npt.NDArray[np.uint8], tuple[Plane, ...]]:
    """A new frame and the views of it each plane is rendered into (no copy afterwards)."""
    if layout == "rgb":
        frame = np.empty((height, width, 3), dtype=np.uint8)
        return frame, (frame,)
    frame = np.empty((height * 3 // 2, width), dtype=np.uint8)
    return frame, split_i420(frame)


def as_frame(planes: Planes, layout: Layout) -> npt.NDArray[np.uint8]:
    """A source's planes as one whole frame (the first and last frames are the images themselves)."""
    if layout == "rgb":
        return planes.planes[0]
    y, u, v = planes.planes
    return np.concatenate([y.reshape(-1), u.reshape(-1), v.reshape(-1)]).reshape(-1, y.shape[1])


def split_i420(frame: npt.NDArray[np.uint8]) -> tuple[Plane, Plane, Plane]:
    """Views of the luma and the two chroma planes of a yuv420p frame (H * 3/2 x W)."""
    rows, width = frame.shape
    height = rows * 2 // 3
    flat = frame.reshape(-1)
    luma = height * width
    quarter = luma // 4
    y = flat[:luma].reshape(height, width)
    u = flat[luma : luma + quarter].reshape(height // 2, width // 2)
    v = flat[luma + quarter : luma + 2 * quarter].reshape(height // 2, width // 2)
    return y, u, v


def plane_matrix(scale: float) -> npt.NDArray[np.float64]:
    """Image pixel -> plane pixel, pixel centres at integers: the identity for a full-size plane; for a
    chroma plane (scale 1/2) its sample (i, j) sits at image pixel (2i, 2j + 1/2), left sited."""
    if scale == 1.0:
        return np.eye(3)
    if scale != 0.5:
        raise ValueError(f"planes are full or half size, got a scale of {scale}")
    return np.array([[0.5, 0.0, 0.0], [0.0, 0.5, -0.25], [0.0, 0.0, 1.0]])
