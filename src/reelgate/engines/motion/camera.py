"""Camera moves over one still image, chosen from the prompt (`vocabulary.camera_move_from_prompt`).

The contract makes the submitted image the first frame, so every path starts at the identity view
(the whole framed image) and only ever looks *inside* the image: a view is a window of the framed
image seen through a virtual camera, and at every frame the camera is zoomed in just enough that the
window stays inside the image, so no frame has a border. Consequences, stated plainly:

- zoom in / push in: the window shrinks towards the centre.
- pan / tilt: the window shrinks a little (to make room) and drifts that way; the drift is always a
  fraction of the room the current view leaves, so it can never overshoot. A flat picture has no
  parallax, so a camera that slides (truck, pedestal) and one that turns (pan, tilt) look alike here.
- roll: the window turns about the centre, and the zoom grows with the angle to hide the corners.
- orbit: the picture turns like a flat card seen by a camera circling it: the near side grows, the
  far side shrinks (a keystone), again zoomed to stay inside. No depth is invented: a real orbit
  would also show parallax, which a single image cannot supply honestly without a depth model.
- zoom out / pull back: showing more than the image would need content we do not have, so the move
  pushes in briskly over the first quarter and then pulls back, slower, to the full image for the
  remaining three quarters: the dominant, final motion is a pull-back and it ends on the image.
- static: every frame is the image. slow / fast scale every amplitude.

Motion is eased (smoothstep) at both ends and sampled with sub-pixel precision, and nothing here is
random, so the same prompt and image always give the same frames (no jitter: every frame is a
smooth function of time).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from reelgate.engines.base import RGBImage
from reelgate.engines.motion.homography import scale_matrix
from reelgate.engines.motion.planes import Layout, as_frame, frame_buffer, plane_matrix, sources_planes
from reelgate.engines.motion.vocabulary import CameraMove, camera_move_from_prompt
from reelgate.media.framing import fit_to_frame

__all__ = ["CameraMove", "CameraRenderer", "View", "camera_frames", "camera_move_from_prompt", "view_at"]

Matrix = npt.NDArray[np.float64]

# Peak zoom of a zoom move, and the zoom a pan/tilt takes to make room, per speed.
_PEAK_ZOOM = {
    "in": {"slow": 1.12, "normal": 1.25, "fast": 1.45},
    "pull_back": {"slow": 1.12, "normal": 1.25, "fast": 1.40},
    "drift": {"slow": 1.10, "normal": 1.18, "fast": 1.30},
}
_PEAK_ROLL_DEG = {"slow": 3.0, "normal": 5.0, "fast": 8.0}
_PEAK_ORBIT_DEG = {"slow": 8.0, "normal": 12.0, "fast": 18.0}
# Distance of the virtual camera from the picture, in picture widths (about a 53 degree lens).
_CARD_DISTANCE = 1.0
# Fraction of the duration a pull-back spends pushing in before it pulls back.
_PULL_BACK_PEAK_AT = 0.25
# Fraction of the duration a pan/tilt takes to reach its zoom, so the rest of the move reads as lateral.
_DRIFT_ZOOM_LEAD = 0.4
# Keep the window a hair inside the image so bilinear taps at its edge never need the border.
_ROOM_MARGIN = 0.98
_SEARCH_STEPS = 40


def smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True)
class View:
    """What the camera sees: zoom, window centre offset (fractions of the image), roll and orbit angles."""

    zoom: float
    offset_x: float = 0.0
    offset_y: float = 0.0
    roll: float = 0.0  # radians, positive = the camera turns clockwise (the picture counterclockwise)
    orbit: float = 0.0  # radians the picture has turned about its vertical axis

    @property
    def is_identity(self) -> bool:
        return self.zoom == 1.0 and not (self.offset_x or self.offset_y or self.roll or self.orbit)

    def matrix(self, width: int, height: int) -> Matrix:
        """Output pixel -> framed-image pixel, both `width` x `height`, pixel centres at integers."""
        d = _CARD_DISTANCE * width
        c, s = math.cos(self.orbit), math.sin(self.orbit)
        # A flat card turned by `orbit` about its vertical centre line, seen from distance d.
        card = np.array([[d, 0.0, 0.0], [0.0, d * c, 0.0], [-s, 0.0, d * c]])
        rc, rs = math.cos(self.roll), math.sin(self.roll)
        roll = np.array([[rc, -rs, 0.0], [rs, rc, 0.0], [0.0, 0.0, 1.0]])
        to_centred = np.array([[1.0, 0.0, 0.5 - width / 2], [0.0, 1.0, 0.5 - height / 2], [0.0, 0.0, 1.0]])
        from_centred = np.array(
            [
                [1.0 / self.zoom, 0.0, width / 2 - 0.5 + self.offset_x * width],
                [0.0, 1.0 / self.zoom, height / 2 - 0.5 + self.offset_y * height],
                [0.0, 0.0, 1.0],
            ]
        )
        result = from_centred @ roll @ card @ to_centred
        return np.asarray(result / result[2, 2], dtype=np.float64)

    def fits(self, width: int, height: int, margin: float = 0.0) -> bool:
        """The window lies inside the image (kept `margin`, a fraction of its size, away from the
        edges), so no frame shows a border."""
        corners = np.array(
            [[0, 0, 1], [width - 1, 0, 1], [width - 1, height - 1, 1], [0, height - 1, 1]], dtype=np.float64
        )
        mapped = corners @ self.matrix(width, height).T
        x, y = mapped[:, 0] / mapped[:, 2], mapped[:, 1] / mapped[:, 2]
        # The window is convex and so is the image: its corners inside means all of it is inside.
        slack_x = margin / 2 * (width - 1) - 1e-9
        slack_y = margin / 2 * (height - 1) - 1e-9
        return bool(
            np.all(x >= slack_x) and np.all(x <= width - 1 - slack_x)
            and np.all(y >= slack_y) and np.all(y <= height - 1 - slack_y)
        )  # fmt: skip


def _zoom_to_fit(view: View, width: int, height: int) -> float:
    """The least zoom at which `view` (centred, with its roll and orbit) stays inside the image."""
    if view.roll == 0.0 and view.orbit == 0.0:
        return 1.0
    low, high = 1.0, 4.0
    for _ in range(_SEARCH_STEPS):
        middle = (low + high) / 2
        # No margin here: the zoom must grow from exactly 1 as the angle grows from 0, or frame 1 jumps.
        if View(middle, roll=view.roll, orbit=view.orbit).fits(width, height):
            high = middle
        else:
            low = middle
    return high


def _room(view: View, direction_x: float, direction_y: float, width: int, height: int) -> float:
    """How far (fraction of the image) the window can move in this direction and stay inside."""
    low, high = 0.0, 0.5
    for _ in range(_SEARCH_STEPS):
        middle = (low + high) / 2
        moved = View(view.zoom, direction_x * middle, direction_y * middle, view.roll, view.orbit)
        if moved.fits(width, height, 1.0 - _ROOM_MARGIN):
            low = middle
        else:
            high = middle
    return low


def view_at(move: CameraMove, t: float, width: int = 1280, height: int = 720) -> View:
    """The view at time t in [0, 1] for a `width` x `height` frame; t=0 is always the identity view."""
    if move.is_static or t <= 0.0:
        return View(1.0)
    ease = smoothstep(t)
    roll = math.radians(_PEAK_ROLL_DEG[move.speed]) * move.roll * ease
    orbit = -math.radians(_PEAK_ORBIT_DEG[move.speed]) * move.orbit * ease  # orbit right: right side nears
    zoom = _zoom_to_fit(View(1.0, roll=roll, orbit=orbit), width, height)
    if move.zoom == "pull_back":
        if t < _PULL_BACK_PEAK_AT:
            amount = smoothstep(t / _PULL_BACK_PEAK_AT)
        else:
            amount = 1.0 - smoothstep((t - _PULL_BACK_PEAK_AT) / (1.0 - _PULL_BACK_PEAK_AT))
        zoom *= 1.0 + (_PEAK_ZOOM["pull_back"][move.speed] - 1.0) * amount
    elif move.zoom == "in":
        zoom *= 1.0 + (_PEAK_ZOOM["in"][move.speed] - 1.0) * ease
    elif move.pan or move.tilt:
        zoom *= 1.0 + (_PEAK_ZOOM["drift"][move.speed] - 1.0) * smoothstep(t / _DRIFT_ZOOM_LEAD)
    view = View(zoom, roll=roll, orbit=orbit)
    if not (move.pan or move.tilt):
        return view
    norm = math.hypot(move.pan, move.tilt)
    direction_x, direction_y = move.pan / norm, move.tilt / norm
    drift = ease * _room(view, direction_x, direction_y, width, height)
    return View(zoom, direction_x * drift, direction_y * drift, roll, orbit)


def detail_scale(image_width: int, image_height: int, width: int, height: int, peak_zoom: float) -> float:
    """How much larger than the output the detailed copy of the image should be.

    Big enough that the deepest zoom samples real detail instead of upsampling, but never beyond the
    image's own resolution (that would only add blur); 1.0 means the framed image is all there is.
    """
    native = min(image_width / width, image_height / height)
    return float(min(max(native, 1.0), peak_zoom))


class CameraRenderer:
    """Renders views of one image; the identity view is exactly `fit_to_frame(image, width, height)`.

    Two copies of the image are kept, like two mipmap levels: the framed image at output size and a
    detailed one `detail_scale` times larger. A view zoomed by z blends a warp of each, weighted by
    log z / log scale. Near z = 1 it is all the framed image, so frame 1 continues frame 0 without a
    jump in sharpness (a bilinear downsample of the detailed copy would alias visibly, ~31 dB against
    frame 0 on a detailed photo); at the deepest zoom it is all the detailed copy, so nothing is
    upsampled that the image has real pixels for. Between, each warp rescales by less than the peak
    zoom, so neither blurs nor aliases noticeably.
    """

    def __init__(self, image: RGBImage, width: int, height: int, peak_zoom: float, layout: Layout = "rgb") -> None:
        """`layout`: the frames come in RGB or straight in the encoder's yuv420p (`planes`)."""
        self.width = width
        self.height = height
        self.layout: Layout = layout
        self.framed = fit_to_frame(image, width, height)
        self.detail_scale = detail_scale(image.shape[1], image.shape[0], width, height, peak_zoom)
        self.detailed = (
            fit_to_frame(image, round(width * self.detail_scale), round(height * self.detail_scale))
            if self.detail_scale > 1.0
            else self.framed
        )
        # Converted once: every frame is warped from these planes, and the identity view is this frame.
        sources = [self.framed, self.detailed] if self.detail_scale > 1.0 else [self.framed]
        converted = sources_planes(sources, layout)
        self._framed_planes = converted[0]
        self._detailed_planes = converted[1] if len(converted) > 1 else None
        self._framed_frame = as_frame(self._framed_planes, layout)

    def render(self, view: View) -> npt.NDArray[np.uint8]:
        if view.is_identity:
            return self._framed_frame
        matrix = view.matrix(self.width, self.height)
        detail_weight = min(1.0, math.log(view.zoom) / math.log(self.detail_scale)) if self.detail_scale > 1.0 else 0.0
        detailed_matrix = self._to_detailed() @ matrix
        frame, targets = frame_buffer(self.width, self.height, self.layout)
        for index, target in enumerate(targets):
            scale = self._framed_planes.scales[index]
            coarse = self._framed_planes.planes[index]
            if detail_weight <= 0.0 or self._detailed_planes is None:
                self._warp(coarse, matrix, scale, target)
                continue
            fine = self._detailed_planes.planes[index]
            if detail_weight >= 1.0:
                self._warp(fine, detailed_matrix, scale, target)
                continue
            from_coarse = self._warp(coarse, matrix, scale, np.empty_like(target))
            from_fine = self._warp(fine, detailed_matrix, scale, np.empty_like(target))
            cv2.addWeighted(from_coarse, 1.0 - detail_weight, from_fine, detail_weight, 0.0, dst=target)
        return frame

    def _to_detailed(self) -> Matrix:
        detailed_h, detailed_w = self.detailed.shape[:2]
        return scale_matrix(detailed_w / self.width, detailed_h / self.height)

    def _warp(
        self, source: npt.NDArray[np.uint8], matrix: Matrix, scale: float, target: npt.NDArray[np.uint8]
    ) -> npt.NDArray[np.uint8]:
        """Warp a plane into `target`; `matrix` maps output pixels to image pixels, `scale` is the plane's."""
        if scale != 1.0:
            matrix = plane_matrix(scale) @ matrix @ np.linalg.inv(plane_matrix(scale))
        size = (target.shape[1], target.shape[0])
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        # The window stays inside the image; replicating covers float rounding at its very edge.
        if abs(matrix[2, 0]) + abs(matrix[2, 1]) < 1e-15:  # no orbit: affine, the cheaper warp
            affine = matrix[:2] / matrix[2, 2]
            cv2.warpAffine(source, affine, size, dst=target, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        else:
            cv2.warpPerspective(source, matrix, size, dst=target, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        return target


def peak_zoom(move: CameraMove, width: int, height: int, samples: int = 25) -> float:
    """The deepest zoom of the path (sampled), which sizes the detailed copy of the image."""
    return max(view_at(move, i / (samples - 1), width, height).zoom for i in range(samples))


def camera_frames(
    image: RGBImage, move: CameraMove, width: int, height: int, count: int, layout: Layout = "rgb"
) -> Iterator[npt.NDArray[np.uint8]]:
    """`count` frames of `move` over `image` in `layout`, one at a time; the first is the framed image exactly."""
    renderer = CameraRenderer(image, width, height, peak_zoom(move, width, height), layout)
    last = max(count - 1, 1)
    for index in range(count):
        yield renderer.render(view_at(move, index / last, width, height))
