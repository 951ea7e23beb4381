"""Dense optical flow both ways between two working-size grey images, and how far to trust it.

OpenCV's DIS flow runs at a reduced working resolution: it is smooth, so estimating it small loses
little and saves most of the cost. Each direction is checked against the other: a pixel of A whose
flow to B is undone by B's flow back lands where it started (forward-backward consistency). Pixels
that fail the check are occluded in the other image (or the flow is wrong there); the share that
passes says whether the flow explains B by A at all.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

FlowField = npt.NDArray[np.float32]  # H x W x 2, (dx, dy) in pixels of the same grid
Plane = npt.NDArray[np.float32]  # H x W
Gray = npt.NDArray[np.uint8]

# Below this share of consistent pixels the flow is not trusted. Calibrated on scikit-image photos:
# shifts, zooms, rotations, moving objects and a 30% brightness change score 0.8-1.0; unrelated
# photos, or a flat grey against a photo, score 0.0-0.15.
MIN_FLOW_CONSISTENCY = 0.5
# A round trip may miss by this many pixels plus this fraction of the motion and still count.
_CONSISTENT_ABS_PX = 1.0
_CONSISTENT_REL = 0.1


@dataclass(frozen=True)
class TwoWayFlow:
    forward: FlowField  # A -> B: A(x) ~ B(x + forward(x))
    backward: FlowField  # B -> A
    visible_forward: Plane  # 0..1 per pixel of A: its flow is confirmed by B's (it is seen in B)
    visible_backward: Plane  # 0..1 per pixel of B: seen in A
    consistency: float  # share of A's pixels with a partner in B whose flows agree, 0..1

    @property
    def trusted(self) -> bool:
        return self.consistency >= MIN_FLOW_CONSISTENCY


def pixel_grid(width: int, height: int) -> tuple[Plane, Plane]:
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return xs, ys


def new_dis() -> cv2.DISOpticalFlow:
    """The DIS flow every estimate here uses (OpenCV's "medium" preset)."""
    return cv2.DISOpticalFlow.create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)


def two_way_flow(a: Gray, b: Gray, b_valid: npt.NDArray[np.bool_] | None = None) -> TwoWayFlow:
    """DIS flow A -> B and B -> A on same-size grey images; `b_valid` marks B's pixels that are real
    (not filled in by a warp), and a flow landing outside them has no partner."""
    dis = new_dis()
    # The third argument is only the output buffer: DIS ignores its contents unless told otherwise.
    forward = np.zeros((*a.shape, 2), dtype=np.float32)
    backward = np.zeros_like(forward)
    dis.calc(a, b, forward)
    dis.calc(b, a, backward)
    return two_way_from(forward, backward, b_valid)


def two_way_from(forward: FlowField, backward: FlowField, b_valid: npt.NDArray[np.bool_] | None = None) -> TwoWayFlow:
    """The two flows, checked against each other: which pixels each image sees, and the share that agree."""
    shape = forward.shape[:2]
    valid = b_valid if b_valid is not None else np.ones(shape, dtype=bool)
    visible_forward, considered = _round_trip_visibility(forward, backward, valid)
    visible_backward, _ = _round_trip_visibility(backward, forward, np.ones(shape, dtype=bool))
    # Where B is only a fill-in, B's own flow means nothing; those pixels are never sampled as B.
    visible_backward[~valid] = 0.0
    passed = float((visible_forward[considered] >= 0.5).sum())
    count = int(considered.sum())
    return TwoWayFlow(
        forward=forward,
        backward=backward,
        visible_forward=visible_forward,
        visible_backward=visible_backward,
        consistency=passed / count if count else 0.0,
    )


def _round_trip_visibility(
    there: FlowField, back: FlowField, target_valid: npt.NDArray[np.bool_]
) -> tuple[Plane, npt.NDArray[np.bool_]]:
    """Soft visibility of each source pixel (1 = round trip closes, 0 = it misses by 2x the tolerance)
    and the mask of source pixels that land on a valid target pixel at all."""
    height, width = there.shape[:2]
    grid_x, grid_y = pixel_grid(width, height)
    landing_x = grid_x + np.ascontiguousarray(there[..., 0])
    landing_y = grid_y + np.ascontiguousarray(there[..., 1])
    back_at_landing = np.asarray(
        cv2.remap(back, landing_x, landing_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE), dtype=np.float32
    )
    error = np.linalg.norm(there + back_at_landing, axis=2)
    tolerance = _CONSISTENT_ABS_PX + _CONSISTENT_REL * np.linalg.norm(there, axis=2)
    inside = (landing_x >= 0) & (landing_x <= width - 1) & (landing_y >= 0) & (landing_y <= height - 1)
    nearest_x = np.clip(np.rint(landing_x), 0, width - 1).astype(np.intp)
    nearest_y = np.clip(np.rint(landing_y), 0, height - 1).astype(np.intp)
    lands_on_valid = inside & target_valid[nearest_y, nearest_x]
    visibility = np.clip(2.0 - error / tolerance, 0.0, 1.0).astype(np.float32)
    visibility[~lands_on_valid] = 0.0
    return visibility, lands_on_valid
