"""Camera moves over one still image, chosen from the prompt.

The contract makes the submitted image the first frame, so every path starts at the identity view
(the whole framed image) and only ever moves *inside* the image: a view is a window of the framed
image, `1/zoom` of its size, and the window never leaves the image, so no frame has a border.
Consequences, stated plainly:

- "zoom in" / "push in": the window shrinks towards the centre.
- "pan left/right", "tilt up/down": the window shrinks a little (to make room) and drifts that way;
  the drift is always a fraction of the room the current zoom leaves, so it can never overshoot.
- "zoom out" / "pull back": showing more than the image would need content we do not have, so the
  move pushes in briskly over the first quarter and then pulls back, slower, to the full image for
  the remaining three quarters: the dominant, final motion is a pull-back and it ends on the image.
- "static": every frame is the image.
- "slow" / "fast" scale the amplitude. No move named: a gentle, slow zoom in (a fast one if the
  prompt only says "fast").

Motion is eased (smoothstep) at both ends and sampled with sub-pixel precision, and nothing here is
random, so the same prompt and image always give the same frames.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from reelgate.engines.base import RGBImage
from reelgate.media.framing import fit_to_frame

# Peak zoom per (move kind, speed); 1.25 is a 25% push, a clear but unhurried move over 5-10 s.
_PEAK_ZOOM: dict[str, dict[str, float]] = {
    "zoom_in": {"slow": 1.12, "normal": 1.25, "fast": 1.45},
    "pull_back": {"slow": 1.12, "normal": 1.25, "fast": 1.40},
    "drift": {"slow": 1.10, "normal": 1.18, "fast": 1.30},
}
# Fraction of the duration a pull-back spends pushing in before it pulls back.
_PULL_BACK_PEAK_AT = 0.25
# Fraction of the duration a pan/tilt takes to reach its zoom, so the rest of the move reads as lateral.
_DRIFT_ZOOM_LEAD = 0.4
# Keep the window a hair inside the image so bilinear taps at its edge never need the border.
_ROOM_MARGIN = 0.98

_ZOOM = r"zoom(?:s|ing|ed)?"
_PUSH = r"push(?:es|ing|ed)?"
_PULL = r"pull(?:s|ing|ed)?"
_DOLLY = r"dolly(?:ing)?|dollie[sd]"
_PAN_VERB = r"pan(?:s|ning|ned)?"
_CUES: dict[str, re.Pattern[str]] = {
    "zoom_in": re.compile(rf"\b(?:{_ZOOM}|{_PUSH}|{_DOLLY})\s+in(?:to|wards?)?\b"),
    "pull_back": re.compile(rf"\b(?:{_ZOOM}|{_DOLLY})\s+out\b|\b{_PULL}\s+back\b"),
    "static": re.compile(
        r"\bstatic\b|\blocked[\s-]off\b|\bno camera (?:movement|motion)\b|"
        r"\b(?:still|fixed|stationary) camera\b|\bcamera (?:is |stays |remains )?still\b"
    ),
}
# Only the camera verbs: "truck"/"move left" read too often as nouns or as the subject's motion.
_PAN = re.compile(
    rf"\b(?:{_PAN_VERB})\s+"
    r"(?:to\s+the\s+|towards?\s+the\s+)?(?P<side>left|right)\b"
)
_TILT = re.compile(
    rf"\b(?:tilt(?:s|ing|ed)?|{_PAN_VERB}|cran(?:e|es|ing|ed)|pedestal(?:s|ing|ed)?)\s+"
    r"(?P<side>up|down)(?:wards?)?\b"
)
_SLOW = re.compile(r"\b(?:slow(?:ly)?|gentl[ey]|subtle|subtly|calm(?:ly)?|leisurely)\b")
_FAST = re.compile(r"\b(?:fast|quick(?:ly)?|rapid(?:ly)?|swift(?:ly)?|dramatic(?:ally)?)\b")


@dataclass(frozen=True)
class CameraMove:
    kind: str  # "zoom_in" | "pull_back" | "drift" (pan/tilt only) | "static"
    speed: str  # "slow" | "normal" | "fast"
    peak_zoom: float
    # Direction of the window's drift, -1..1 per axis: x < 0 pans left, y < 0 tilts up.
    drift_x: float = 0.0
    drift_y: float = 0.0

    @property
    def label(self) -> str:
        """A short human description for task_info, e.g. "zoom_in+pan_left (slow)"."""
        parts = [] if self.kind == "drift" else [self.kind]
        if self.drift_x:
            parts.append("pan_left" if self.drift_x < 0 else "pan_right")
        if self.drift_y:
            parts.append("tilt_up" if self.drift_y < 0 else "tilt_down")
        return f"{'+'.join(parts)} ({self.speed})"


def camera_move_from_prompt(prompt: str) -> CameraMove:
    text = prompt.lower()
    speed = "slow" if _SLOW.search(text) else "fast" if _FAST.search(text) else "normal"
    pan = _PAN.search(text)
    tilt = _TILT.search(text)
    drift_x = 0.0 if pan is None else (-1.0 if pan.group("side") == "left" else 1.0)
    drift_y = 0.0 if tilt is None else (-1.0 if tilt.group("side") == "up" else 1.0)
    # When cues conflict ("static shot, then zoom in"), the one the prompt names first wins.
    found = {kind: match.start() for kind, pattern in _CUES.items() if (match := pattern.search(text))}
    kind = min(found, key=found.__getitem__) if found else None
    if kind == "static":
        return CameraMove(kind="static", speed=speed, peak_zoom=1.0)
    if kind is None and (drift_x or drift_y):
        kind = "drift"
    if kind is None:
        # No move named: a gentle zoom in, unless the prompt asks for pace ("fast", "dramatic").
        speed = "fast" if speed == "fast" else "slow"
        kind = "zoom_in"
    return CameraMove(kind=kind, speed=speed, peak_zoom=_PEAK_ZOOM[kind][speed], drift_x=drift_x, drift_y=drift_y)


def smoothstep(x: float) -> float:
    x = min(max(x, 0.0), 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True)
class View:
    """A window of the framed image: `1/zoom` of its size, centre offset in fractions of its size."""

    zoom: float
    offset_x: float
    offset_y: float

    @property
    def is_identity(self) -> bool:
        return self.zoom == 1.0 and self.offset_x == 0.0 and self.offset_y == 0.0


def view_at(move: CameraMove, t: float) -> View:
    """The view at time t in [0, 1]; t=0 is always the identity view."""
    if move.kind == "static" or t <= 0.0:
        return View(1.0, 0.0, 0.0)
    if move.kind == "pull_back":
        if t < _PULL_BACK_PEAK_AT:
            amount = smoothstep(t / _PULL_BACK_PEAK_AT)
        else:
            amount = 1.0 - smoothstep((t - _PULL_BACK_PEAK_AT) / (1.0 - _PULL_BACK_PEAK_AT))
    elif move.kind == "drift":
        amount = smoothstep(t / _DRIFT_ZOOM_LEAD)
    else:
        amount = smoothstep(t)
    zoom = 1.0 + (move.peak_zoom - 1.0) * amount
    # Half the slack between the window and the image, per side: the most the centre may move.
    room = (1.0 - 1.0 / zoom) / 2.0 * _ROOM_MARGIN
    drift = smoothstep(t) * room
    return View(zoom, move.drift_x * drift, move.drift_y * drift)


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
    zoom (at most 1.45), so neither blurs nor aliases noticeably.
    """

    def __init__(self, image: RGBImage, width: int, height: int, peak_zoom: float) -> None:
        self.width = width
        self.height = height
        self.framed = fit_to_frame(image, width, height)
        self.detail_scale = detail_scale(image.shape[1], image.shape[0], width, height, peak_zoom)
        self.detailed = (
            fit_to_frame(image, round(width * self.detail_scale), round(height * self.detail_scale))
            if self.detail_scale > 1.0
            else self.framed
        )

    def render(self, view: View) -> RGBImage:
        if view.is_identity:
            return self.framed
        detail_weight = min(1.0, math.log(view.zoom) / math.log(self.detail_scale)) if self.detail_scale > 1.0 else 0.0
        if detail_weight <= 0.0:
            return self._warp(self.framed, view)
        if detail_weight >= 1.0:
            return self._warp(self.detailed, view)
        coarse = self._warp(self.framed, view)
        fine = self._warp(self.detailed, view)
        blended = cv2.addWeighted(coarse, 1.0 - detail_weight, fine, detail_weight, 0.0)
        return np.asarray(blended, dtype=np.uint8)

    def _warp(self, source: RGBImage, view: View) -> RGBImage:
        source_h, source_w = source.shape[:2]
        # Output pixel centre u + 0.5 lands at fraction 0.5 + offset + (u + 0.5 - W/2) / (W * zoom)
        # of the framed image; source pixel centres sit at fraction * size - 0.5.
        step_x = source_w / (self.width * view.zoom)
        step_y = source_h / (self.height * view.zoom)
        shift_x = (0.5 + view.offset_x) * source_w + (0.5 - self.width / 2.0) * step_x - 0.5
        shift_y = (0.5 + view.offset_y) * source_h + (0.5 - self.height / 2.0) * step_y - 0.5
        matrix = np.array([[step_x, 0.0, shift_x], [0.0, step_y, shift_y]], dtype=np.float64)
        frame = cv2.warpAffine(
            source, matrix, (self.width, self.height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            # The window stays inside the image; replicating covers float rounding at its very edge.
            borderMode=cv2.BORDER_REPLICATE,
        )  # fmt: skip
        return np.asarray(frame, dtype=np.uint8)  # names the dtype OpenCV's stubs leave open; no copy


def camera_frames(image: RGBImage, move: CameraMove, width: int, height: int, count: int) -> Iterator[RGBImage]:
    """`count` frames of `move` over `image`, one at a time; the first is the framed image exactly."""
    renderer = CameraRenderer(image, width, height, move.peak_zoom)
    last = max(count - 1, 1)
    for index in range(count):
        yield renderer.render(view_at(move, index / last))
