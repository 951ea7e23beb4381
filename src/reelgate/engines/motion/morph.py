"""First-to-last-frame morph driven by dense optical flow (not a crossfade).

Flow is estimated both ways between the framed first image A and last image B with OpenCV's DIS
at a reduced working resolution (it is smooth, so upscaling it loses little and saves most of the
cost), then upscaled to the output size. Frame t samples A and B along the motion and blends them:

    F_t0 = -(1-t) t F_AB + t^2 F_BA          I_t(x) = (1-t) A(x + F_t0(x)) + t B(x + F_t1(x))
    F_t1 = (1-t)^2 F_AB - t (1-t) F_BA

These are the linear-motion estimates of the flow from time t back to A and on to B (Jiang et al.,
"Super SloMo", 2018): near A the flow is read at A's geometry, near B at B's. At t=0 the frame is A
and at t=1 it is B, exactly. A pixel that moves by d from A to B sits at t*d at time t.

When A and B show different scenes no flow explains one by the other, and warping along a bogus
flow smears both images; the morph then falls back to a plain crossfade. The test is forward-backward
consistency: the share of pixels whose A->B flow is undone by the B->A flow at its landing point.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from reelgate.engines.base import RGBImage

# OpenCV's stubs type every result as "some array"; np.asarray(..., dtype=...) names the dtype at no
# cost (no copy when it already matches) so the rest of the module stays precisely typed.
FlowField = npt.NDArray[np.float32]  # H x W x 2, (dx, dy) in pixels
Plane = npt.NDArray[np.float32]  # H x W, one component of a flow or a sampling map

WORK_SHORT_SIDE_PX = 360
# Below this share of consistent pixels the flow is not trusted. Calibrated on scikit-image photos at
# 720p: shifts, a 20% zoom, an 8 degree rotation and a 30% brightness change score 0.86-1.0; unrelated
# photos, or a flat grey against a photo, score 0.00-0.14.
MIN_FLOW_CONSISTENCY = 0.5
# A round trip may miss by this many working pixels plus this fraction of the motion and still count.
_CONSISTENT_ABS_PX = 1.0
_CONSISTENT_REL = 0.1


@dataclass(frozen=True)
class FlowPair:
    forward: FlowField  # A -> B: A(x) ~ B(x + forward(x)); at output size
    backward: FlowField  # B -> A
    consistency: float  # share of working pixels whose forward and backward flows agree, 0..1

    @property
    def trusted(self) -> bool:
        return self.consistency >= MIN_FLOW_CONSISTENCY


def estimate_flows(a: RGBImage, b: RGBImage, work_short_side_px: int = WORK_SHORT_SIDE_PX) -> FlowPair:
    """Dense flow both ways between two same-size images, estimated small and returned at full size."""
    height, width = a.shape[:2]
    scale = min(1.0, work_short_side_px / min(width, height))
    work_size = (max(round(width * scale), 8), max(round(height * scale), 8))
    gray_a = _working_gray(a, work_size)
    gray_b = _working_gray(b, work_size)
    dis = cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    # The third argument is only the output buffer: DIS ignores its contents unless told otherwise.
    forward_small = np.zeros((work_size[1], work_size[0], 2), dtype=np.float32)
    backward_small = np.zeros_like(forward_small)
    dis.calc(gray_a, gray_b, forward_small)
    dis.calc(gray_b, gray_a, backward_small)
    return FlowPair(
        forward=_upscale_flow(forward_small, width, height),
        backward=_upscale_flow(backward_small, width, height),
        consistency=flow_consistency(forward_small, backward_small),
    )


def _working_gray(image: RGBImage, size: tuple[int, int]) -> npt.NDArray[np.uint8]:
    gray = np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), dtype=np.uint8)
    if (gray.shape[1], gray.shape[0]) == size:
        return gray
    return np.asarray(cv2.resize(gray, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def _upscale_flow(flow: FlowField, width: int, height: int) -> FlowField:
    small_h, small_w = flow.shape[:2]
    if (small_w, small_h) == (width, height):
        return flow
    big = np.asarray(cv2.resize(flow, (width, height), interpolation=cv2.INTER_LINEAR), dtype=np.float32)
    # Vectors are lengths in pixels, so they grow with the image.
    big[..., 0] *= width / small_w
    big[..., 1] *= height / small_h
    return big


def _pixel_grid(width: int, height: int) -> tuple[Plane, Plane]:
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return xs, ys


def _component(flow: FlowField, axis: int) -> Plane:
    # OpenCV wants contiguous planes; a strided view of the interleaved field would be copied per call.
    return np.ascontiguousarray(flow[..., axis])


def flow_consistency(forward: FlowField, backward: FlowField) -> float:
    height, width = forward.shape[:2]
    grid_x, grid_y = _pixel_grid(width, height)
    landing_x = grid_x + _component(forward, 0)
    landing_y = grid_y + _component(forward, 1)
    inside = (landing_x >= 0) & (landing_x <= width - 1) & (landing_y >= 0) & (landing_y <= height - 1)
    backward_at_landing = cv2.remap(backward, landing_x, landing_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    round_trip_error = np.linalg.norm(forward + backward_at_landing, axis=2)
    tolerance = _CONSISTENT_ABS_PX + _CONSISTENT_REL * np.linalg.norm(forward, axis=2)
    # Pixels that leave the frame have no partner to agree with; they count neither way.
    considered = int(inside.sum())
    if considered == 0:
        return 0.0
    return float(((round_trip_error <= tolerance) & inside).sum() / considered)


class FlowMorph:
    """Frames between A and B along the estimated motion; frame_at(0) is A, frame_at(1) is B."""

    def __init__(self, a: RGBImage, b: RGBImage, flows: FlowPair) -> None:
        if a.shape != b.shape:
            raise ValueError(f"morph needs same-size images, got {a.shape} and {b.shape}")
        self.a = a
        self.b = b
        self.flows = flows
        height, width = a.shape[:2]
        self._grid = _pixel_grid(width, height)
        self._forward = (_component(flows.forward, 0), _component(flows.forward, 1))
        self._backward = (_component(flows.backward, 0), _component(flows.backward, 1))
        # Reused per frame: at 720p each plane is 3.7 MB, and allocating them per frame costs time.
        self._map_a = (np.empty_like(self._grid[0]), np.empty_like(self._grid[0]))
        self._map_b = (np.empty_like(self._grid[0]), np.empty_like(self._grid[0]))

    def frame_at(self, t: float) -> RGBImage:
        if t <= 0.0:
            return self.a
        if t >= 1.0:
            return self.b
        for axis in (0, 1):
            grid, forward, backward = self._grid[axis], self._forward[axis], self._backward[axis]
            map_a, map_b = self._map_a[axis], self._map_b[axis]
            cv2.scaleAdd(forward, -(1.0 - t) * t, grid, map_a)
            cv2.scaleAdd(backward, t * t, map_a, map_a)
            cv2.scaleAdd(forward, (1.0 - t) ** 2, grid, map_b)
            cv2.scaleAdd(backward, -t * (1.0 - t), map_b, map_b)
        # Replicate, not a constant: a sample that lands past the edge takes the edge colour, never black.
        from_a = cv2.remap(self.a, *self._map_a, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        from_b = cv2.remap(self.b, *self._map_b, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return np.asarray(cv2.addWeighted(from_a, 1.0 - t, from_b, t, 0.0), dtype=np.uint8)


def crossfade_at(a: RGBImage, b: RGBImage, t: float) -> RGBImage:
    if t <= 0.0:
        return a
    if t >= 1.0:
        return b
    return np.asarray(cv2.addWeighted(a, 1.0 - t, b, t, 0.0), dtype=np.uint8)


def morph_frames(a: RGBImage, b: RGBImage, flows: FlowPair | None, count: int) -> Iterator[RGBImage]:
    """`count` frames from A to B, one at a time: along the flow, or a crossfade when `flows` is None."""
    morph = FlowMorph(a, b, flows) if flows is not None else None
    last = max(count - 1, 1)
    for index in range(count):
        t = index / last
        yield morph.frame_at(t) if morph is not None else crossfade_at(a, b, t)
