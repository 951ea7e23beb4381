"""First-to-last-frame morphs: which motion model explains B by A, and the frames that follow from it.

The estimation runs on grey copies at a working size (short side 360 px), in layers, and the first
model the pair supports serves the job; `method` (shown as `task_info.method`) says which:

- "similarity" / "homography": the camera model alone, when nothing moves on its own (the residual is
  below half an output pixel almost everywhere) or when the residual flow is not consistent (local
  changes no flow explains, e.g. lighting or non-rigid ones): the camera follows its path and those
  changes fade. The camera model is a homography fitted on the pixels (`homography.estimate_camera`)
  or the similarity (zoom, roll, shift) closest to it: the similarity ("similarity") unless the
  homography explains the aligned pixels clearly better (`homography.choose_camera_model`: a keystone,
  a camera turning on a tripod: "homography"); its four extra degrees of freedom otherwise fit noise.
  Either way the camera path is the steady move between them (`camera_path`).
- "similarity+flow" / "homography+flow": that camera model and, on top of it, a residual dense flow
  between A and B registered to A, consistent both ways: camera moves and local motion (an object).
- "optical_flow": no camera model (too few features, or a scene with no dominant plane), but a dense
  flow of A to B that is consistent both ways.
- "crossfade": nothing explains B by A (unrelated images, or too little texture to tell): a plain,
  smooth dissolve, never a warp along a bogus motion.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import cv2
import numpy as np
import numpy.typing as npt

from reelgate.engines.base import RGBImage
from reelgate.engines.motion.flow import FlowField, Gray, Plane, TwoWayFlow, pixel_grid, two_way_flow
from reelgate.engines.motion.homography import CameraFit, choose_camera_model, estimate_camera, rescale
from reelgate.engines.motion.large_motion import MovingLayer, behind_layers, large_motion_layers
from reelgate.engines.motion.layered import LayeredMorph, ObjectLayer, ResidualFlow
from reelgate.engines.motion.planes import Layout, as_frame, sources_planes

WORK_SHORT_SIDE_PX = 360
# The residual flow is kept only where it is a real motion that explains B much better than the camera
# model alone: it moves at least a working pixel, and it removes at least this many grey levels
# (blurred absolute difference; fully from twice that) and at least half of the difference. Elsewhere
# it is estimation noise that fits resampling differences around an exact camera model, and following
# it would only blur what the camera renders sharp (calibrated on zooms of scikit-image photos, where
# a looser gate let noise in on a tenth of the frame and cost 5-10 dB).
RESIDUAL_GAIN_GREY = 6.0
_MIN_RESIDUAL_PX = 1.0
_MAX_RESIDUAL_ERROR_SHARE = 0.5
_RESIDUAL_BLUR_SIGMA = 2.0  # working pixels: compares neighbourhoods, not single noisy pixels
_GATE_FEATHER_SIGMA = 3.0  # working pixels: the residual fades in and out, no seams at the layer edge
# Below this share of the frame the residual is dropped: the camera model explains the pair.
MIN_RESIDUAL_SHARE = 0.002


@dataclass
class MorphPlan:
    """How frames between A and B are made; `renderer` is None for a crossfade."""

    method: str
    renderer: LayeredMorph | None
    info: dict[str, str | int | float | bool] = field(default_factory=dict)


def work_size(width: int, height: int, short_side_px: int = WORK_SHORT_SIDE_PX) -> tuple[int, int]:
    scale = min(1.0, short_side_px / min(width, height))
    return max(round(width * scale), 8), max(round(height * scale), 8)


def plan_morph(a: RGBImage, b: RGBImage) -> MorphPlan:
    """Estimate the motion from A to B (same size, framed) and choose the method that explains it."""
    if a.shape != b.shape:
        raise ValueError(f"morph needs same-size images, got {a.shape} and {b.shape}")
    height, width = a.shape[:2]
    size = work_size(width, height)
    gray_a, gray_b = _working_gray(a, size), _working_gray(b, size)
    fit = estimate_camera(gray_a, gray_b)
    info: dict[str, str | int | float | bool] = {
        "camera_inliers": fit.inliers,
        "camera_correlation": round(fit.correlation, 3),
    }
    if fit.matrix is not None:
        return _plan_with_camera(a, b, gray_a, gray_b, fit, size, info)
    flow = two_way_flow(gray_a, gray_b)
    info["flow_consistency"] = round(flow.consistency, 3)
    gated, share = _gated(flow, gray_a, gray_b)
    info["residual_share"] = round(share, 4)
    # A consistent flow that moves nothing (two flat images, a lighting change) explains nothing either.
    if flow.trusted and share >= MIN_RESIDUAL_SHARE:
        layers = large_motion_layers(gray_a, gray_b, flow)
        info["moving_layers"] = len(layers)
        residual = _residual(behind_layers(gated, layers), layers, width, height, size)
        renderer = LayeredMorph(a, b, np.eye(3), residual, size)
        return MorphPlan("optical_flow", renderer, info)
    return MorphPlan("crossfade", None, info)


def _plan_with_camera(
    a: RGBImage,
    b: RGBImage,
    gray_a: Gray,
    gray_b: Gray,
    fit: CameraFit,
    size: tuple[int, int],
    info: dict[str, str | int | float | bool],
) -> MorphPlan:
    assert fit.matrix is not None
    height, width = a.shape[:2]
    work_w, work_h = size
    model, matrix, deviation = choose_camera_model(gray_a, gray_b, fit)
    info["camera_model"] = model
    # How far the fitted homography is from a similarity (working px): a keystone's size, or fitting noise.
    info["camera_keystone_px"] = round(deviation, 3)
    registered, covered = _register(gray_b, matrix, size)
    flow = two_way_flow(gray_a, registered, covered)
    info["flow_consistency"] = round(flow.consistency, 3)
    camera = rescale(matrix, width / work_w, height / work_h)
    if model == "similarity":
        camera[2] = (0.0, 0.0, 1.0)  # exactly affine, so every frame is warped as one (rescale may leave 1e-17)
    gated, share = _gated(flow, gray_a, registered, covered)
    info["residual_share"] = round(share, 4)
    if flow.trusted and share >= MIN_RESIDUAL_SHARE:
        # What moves further than DIS follows (`large_motion`), as layers over the camera and the flow.
        layers = large_motion_layers(gray_a, registered, flow, covered)
        info["moving_layers"] = len(layers)
        residual = _residual(behind_layers(gated, layers), layers, width, height, size)
        return MorphPlan(f"{model}+flow", LayeredMorph(a, b, camera, residual, size), info)
    return MorphPlan(model, LayeredMorph(a, b, camera, None, size), info)


def _working_gray(image: RGBImage, size: tuple[int, int]) -> Gray:
    gray = np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY), dtype=np.uint8)
    if (gray.shape[1], gray.shape[0]) == size:
        return gray
    return np.asarray(cv2.resize(gray, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def _register(b: Gray, matrix: npt.NDArray[np.float64], size: tuple[int, int]) -> tuple[Gray, npt.NDArray[np.bool_]]:
    """B seen from A's frame through the camera model, and where B really covers it."""
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    registered = cv2.warpPerspective(b, matrix, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
    inner = np.zeros_like(b)
    inner[1:-1, 1:-1] = 255
    covered = cv2.warpPerspective(inner, matrix, size, flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
    return np.asarray(registered, dtype=np.uint8), np.asarray(covered, dtype=np.uint8) > 0


def _gated(
    flow: TwoWayFlow, a: Gray, b: Gray, b_valid: npt.NDArray[np.bool_] | None = None
) -> tuple[TwoWayFlow, float]:
    """The flow kept only where following it matches the other image better than staying put.

    `b_valid` marks B's real pixels: where B is a fill-in of the registration, any flow "explains" the
    difference better than none, and means nothing. Returns the gated flow and the share of A's pixels
    where it is kept.
    """
    gate_forward = _gate(a, b, flow.forward)
    gate_backward = _gate(b, a, flow.backward)
    if b_valid is not None:
        # Shrink the valid area a little: the fill-in bleeds into its neighbours through the blurs.
        inner = cv2.erode(b_valid.astype(np.uint8), np.ones((7, 7), np.uint8)) > 0
        gate_forward[~inner] = 0.0
        gate_backward[~inner] = 0.0
    gated = replace(
        flow,
        forward=np.asarray(flow.forward * gate_forward[..., None], dtype=np.float32),
        backward=np.asarray(flow.backward * gate_backward[..., None], dtype=np.float32),
    )
    return gated, float((gate_forward > 0.5).mean())


def _gate(source: Gray, target: Gray, flow: FlowField) -> Plane:
    height, width = source.shape
    grid_x, grid_y = pixel_grid(width, height)
    followed = cv2.remap(
        target, grid_x + flow[..., 0], grid_y + flow[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    source_f = source.astype(np.float32)
    staying = cv2.GaussianBlur(np.abs(source_f - target.astype(np.float32)), (0, 0), _RESIDUAL_BLUR_SIGMA)
    following = cv2.GaussianBlur(np.abs(source_f - followed.astype(np.float32)), (0, 0), _RESIDUAL_BLUR_SIGMA)
    gate = np.clip((staying - following) / RESIDUAL_GAIN_GREY - 1.0, 0.0, 1.0)
    gate[following > _MAX_RESIDUAL_ERROR_SHARE * staying] = 0.0
    gate *= np.clip(np.linalg.norm(flow, axis=2) - (_MIN_RESIDUAL_PX - 0.5), 0.0, 1.0)
    # Widen before feathering so the fade happens outside the moving region, not across it.
    gate = cv2.dilate(gate, np.ones((5, 5), np.uint8))
    return np.asarray(cv2.GaussianBlur(gate, (0, 0), _GATE_FEATHER_SIGMA), dtype=np.float32)


def _residual(
    flow: TwoWayFlow, layers: list[MovingLayer], width: int, height: int, size: tuple[int, int]
) -> ResidualFlow:
    """The flow and the layers' shifts in output pixels (vectors are lengths: they grow with the image),
    their maps still on the working grid."""
    scale = np.array([width / size[0], height / size[1]], dtype=np.float32)
    return ResidualFlow(
        forward=np.asarray(flow.forward * scale, dtype=np.float32),
        backward=np.asarray(flow.backward * scale, dtype=np.float32),
        visible_forward=flow.visible_forward,
        visible_backward=flow.visible_backward,
        layers=tuple(
            ObjectLayer(
                (layer.shift[0] * float(scale[0]), layer.shift[1] * float(scale[1])), layer.mask_a, layer.mask_b
            )
            for layer in layers
        ),
    )


def crossfade_at(a: npt.NDArray[np.uint8], b: npt.NDArray[np.uint8], t: float) -> npt.NDArray[np.uint8]:
    if t <= 0.0:
        return a
    if t >= 1.0:
        return b
    return np.asarray(cv2.addWeighted(a, 1.0 - t, b, t, 0.0), dtype=np.uint8)


def frame_at(plan: MorphPlan, a: RGBImage, b: RGBImage, t: float) -> RGBImage:
    return plan.renderer.frame_at(t) if plan.renderer is not None else crossfade_at(a, b, t)


def morph_frames(
    a: RGBImage, b: RGBImage, plan: MorphPlan, count: int, layout: Layout = "rgb"
) -> Iterator[npt.NDArray[np.uint8]]:
    """`count` frames from A to B in `layout`, one at a time; the first is A and the last is B."""
    last = max(count - 1, 1)
    if plan.renderer is not None:
        renderer = plan.renderer.in_layout(layout)
        for index in range(count):
            yield renderer.frame_at(index / last)
        return
    # A crossfade is linear in the pixel values, so it is made in the layout from A and B converted once.
    first, final = (as_frame(planes, layout) for planes in sources_planes([a, b], layout))
    for index in range(count):
        yield crossfade_at(first, final, index / last)
