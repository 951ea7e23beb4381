"""Large displacements that DIS flow misses: candidate motions found globally, then fused per pixel.

DIS works coarse to fine from zero motion. An object that moves further than its own size at DIS's
coarsest level, and whose texture is weak (a plain disc, a car's side), is smoothed away there and the
flow stays on the background's zero: on the benchmark's moving discs (35 px radius, moving 20-65 px at
448x252) DIS found none of the motion on the worst pairs. Tuning DIS does not help (its coarsest scale
is fixed by the image size, and a finer start sees even less).

What finds them (Lempitsky et al., "FusionFlow", 2008, in spirit; the candidates from phase correlation,
Kuglin & Hines, 1975):

1. Where the two images (B registered to A by the camera model) differ, phase correlation of those
   regions alone (the rest masked out, so the still background's peak at zero does not drown them)
   gives the translations that carry A's changed content onto B's: one sharp peak per moving object.
2. For each candidate translation, DIS is run again starting from it (on B shifted by it: OpenCV 5's
   DIS takes no initial flow), so its coarse-to-fine search has only the remainder to find, locally
   (the object's own small turn or change of scale).
3. Per pixel, the field that explains the pixel best (blurred absolute difference after following it)
   is kept, the original flow unless a candidate explains the pixel clearly better, both directions,
   and the usual forward-backward check (`flow.two_way_from`) says which pixels the other image sees.
4. An object is then the pixels whose fused flow is a candidate's translation, that changed between A
   and B, and that the other image confirms, grown to the object's outline; each is a `MovingLayer`
   with one translation and a matte in each image, which `layered` composites in front of the rest
   (`behind_layers`: behind it only the camera moves).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import cv2
import numpy as np
import numpy.typing as npt

from reelgate.engines.motion.flow import FlowField, Gray, Plane, TwoWayFlow, new_dis, pixel_grid, two_way_from

# Where A and B (registered) differ by more than this (grey levels, blurred), something moved (or the
# lighting changed): only there are candidates looked for.
_CHANGED_GREY = 10.0
_CHANGED_BLUR_SIGMA = 2.0
# Below this share of the frame changed, there is no object to find (noise, resampling).
_MIN_CHANGED_SHARE = 0.003
_MAX_CANDIDATES = 3
# Shorter candidates DIS finds by itself; they are left out.
_MIN_CANDIDATE_PX = 3.0
# A secondary peak must be at least this share of the highest to be tried (the rest is clutter).
_MIN_PEAK_SHARE = 0.2
_PEAK_SUPPRESS_PX = 4
# A candidate's field replaces the base flow at a pixel only if it leaves this many grey levels less
# difference (blurred), and at most this share of it: ties (flat regions) keep the base flow.
_FUSE_MARGIN_GREY = 2.0
_FUSE_MAX_SHARE = 0.8
_FUSE_BLUR_SIGMA = 2.0
# A layer smaller than this share of the frame (in either image) is chance matches of texture.
_MIN_LAYER_SHARE = 0.002
_LAYER_FEATHER_SIGMA = 1.0  # working pixels: a soft edge for the layer's matte
# A pixel moves with a layer when its flow is the layer's translation to within this (px, or share).
_LAYER_TOLERANCE_PX = 2.0
_LAYER_TOLERANCE_REL = 0.1
# How far past the flow's mask the outline is looked for (working px), and the blur that compares there.
_GROW_PX = 5
_EDGE_BLUR_SIGMA = 1.0
# How far around an object the background's flow is taken as the camera's alone (working px): about
# the reach of DIS's smoothing across an outline (its 8 px patches, then the variational refinement).
_BEHIND_PX = 8


def candidate_translations(a: Gray, b: Gray, b_valid: npt.NDArray[np.bool_] | None = None) -> list[tuple[float, float]]:
    """Translations (dx, dy) in pixels that carry A's changed regions onto B's, strongest first."""
    a_f, b_f = a.astype(np.float32), b.astype(np.float32)
    changed = _changed(a, b)
    if b_valid is not None:
        changed &= b_valid
    if float(changed.mean()) < _MIN_CHANGED_SHARE:
        return []
    # A soft window around what changed: hard mask edges would correlate with themselves (a peak at 0).
    window = cv2.dilate(changed.astype(np.float32), np.ones((9, 9), np.uint8))
    window = np.asarray(cv2.GaussianBlur(window, (0, 0), 4.0), dtype=np.float32)
    height, width = a.shape
    # Zero-padded to twice the size, so a translation does not wrap around into another one.
    padded_h, padded_w = cv2.getOptimalDFTSize(2 * height), cv2.getOptimalDFTSize(2 * width)

    def windowed(image: Plane) -> Plane:
        mean = float((image * window).sum() / max(float(window.sum()), 1e-6))
        out = np.zeros((padded_h, padded_w), dtype=np.float32)
        out[:height, :width] = (image - mean) * window
        return out

    spectrum = np.fft.rfft2(windowed(b_f)) * np.conj(np.fft.rfft2(windowed(a_f)))
    magnitude = np.abs(spectrum)
    # Phase correlation, regularised: bins with almost no energy are noise, not phase.
    spectrum /= magnitude + 1e-3 * float(magnitude.max())
    surface = np.fft.fftshift(np.fft.irfft2(spectrum, s=(padded_h, padded_w)))
    centre_x, centre_y = padded_w // 2, padded_h // 2
    found: list[tuple[float, float]] = []
    highest = float(surface.max())
    for _ in range(_MAX_CANDIDATES + 1):  # one more: the peak at zero (the changes that did not move)
        y, x = np.unravel_index(int(np.argmax(surface)), surface.shape)
        peak = float(surface[y, x])
        if peak <= 0.0 or peak < _MIN_PEAK_SHARE * highest:
            break
        dx, dy = _subpixel(surface, int(x), int(y))
        surface[
            max(0, y - _PEAK_SUPPRESS_PX) : y + _PEAK_SUPPRESS_PX + 1,
            max(0, x - _PEAK_SUPPRESS_PX) : x + _PEAK_SUPPRESS_PX + 1,
        ] = -np.inf
        shift = (dx - centre_x, dy - centre_y)
        if np.hypot(*shift) >= _MIN_CANDIDATE_PX and len(found) < _MAX_CANDIDATES:
            found.append(shift)
    return found


def _subpixel(surface: npt.NDArray[np.float64], x: int, y: int) -> tuple[float, float]:
    """The peak's position refined by a parabola through it and its neighbours, each axis on its own."""

    def offset(low: float, mid: float, high: float) -> float:
        denominator = low - 2.0 * mid + high
        if not np.isfinite(denominator) or denominator >= 0.0:
            return 0.0
        return float(np.clip(0.5 * (low - high) / denominator, -0.5, 0.5))

    height, width = surface.shape
    dx = offset(surface[y, x - 1], surface[y, x], surface[y, x + 1]) if 0 < x < width - 1 else 0.0
    dy = offset(surface[y - 1, x], surface[y, x], surface[y + 1, x]) if 0 < y < height - 1 else 0.0
    return x + dx, y + dy


@dataclass(frozen=True)
class MovingLayer:
    """An object moving by one translation (working pixels, in A's frame with B registered to it), and
    where it is in each image (0..1, working grid): in A (`mask_a`) and in B registered (`mask_b`)."""

    shift: tuple[float, float]
    mask_a: Plane
    mask_b: Plane


def large_motion_layers(
    a: Gray, b: Gray, base: TwoWayFlow, b_valid: npt.NDArray[np.bool_] | None = None
) -> list[MovingLayer]:
    """The objects that move by one translation, each as a layer (whether DIS followed them or not).

    A pixel of A belongs to a candidate's layer where the fused flow (the base flow, or a candidate's
    field where that explains the pixel clearly better) is the candidate's translation, A and B differ
    there, and B's flow confirms it (forward-backward); likewise for B. The masks are then grown to the
    object's outline (`_grown`). Layers smaller than `_MIN_LAYER_SHARE` of the frame in either image are
    chance matches, and dropped; so is a candidate that refines onto a layer already taken (a side lobe).
    """
    candidates = candidate_translations(a, b, b_valid)
    if not candidates:
        return []
    forward_fields, backward_fields = [base.forward], [base.backward]
    dis = new_dis()
    for dx, dy in candidates:
        forward_fields.append(_flow_from(dis, a, b, (dx, dy)))
        backward_fields.append(_flow_from(dis, b, a, (-dx, -dy)))
    forward_choice = _fuse(a, b, forward_fields)
    backward_choice = _fuse(b, a, backward_fields)
    forward = _chosen(forward_fields, forward_choice)
    backward = _chosen(backward_fields, backward_choice)
    valid = b_valid if b_valid is not None else np.ones(a.shape, dtype=bool)
    fused = two_way_from(forward, backward, valid)
    changed_a = _changed(a, b) & valid
    changed_b = _changed(b, a) & valid
    layers: list[MovingLayer] = []
    for dx, dy in candidates:
        # The object is where the fused flow (the base flow where DIS found the motion itself, the
        # candidate's field where it did not) moves with the candidate, A and B differ, and B agrees.
        in_a = _near(forward, (dx, dy)) & changed_a & (fused.visible_forward >= 0.5)
        if not in_a.any():
            continue
        # The layer's own translation: the median of its flow, finer than the correlation peak.
        shift = (float(np.median(forward[..., 0][in_a])), float(np.median(forward[..., 1][in_a])))
        if any(np.hypot(shift[0] - layer.shift[0], shift[1] - layer.shift[1]) < _tolerance(shift) for layer in layers):
            continue  # a side lobe of a peak already taken
        in_a = _clean(_near(forward, shift) & changed_a & (fused.visible_forward >= 0.5))
        in_b = _clean(_near(backward, (-shift[0], -shift[1])) & changed_b & (fused.visible_backward >= 0.5))
        in_a = _grown(in_a, a, b, shift, base.forward)
        in_b = _grown(in_b, b, a, (-shift[0], -shift[1]), base.backward)
        if min(float(in_a.mean()), float(in_b.mean())) < _MIN_LAYER_SHARE:
            continue
        layers.append(MovingLayer(shift, _feathered(in_a), _feathered(in_b)))
    return layers


def _grown(
    mask: npt.NDArray[np.bool_], source: Gray, target: Gray, shift: tuple[float, float], base: FlowField
) -> npt.NDArray[np.bool_]:
    """`mask` grown to the object's edge. A flow is smooth across an object's outline, so the pixels
    where it equals the object's motion stop short of the outline; near the mask, a pixel is the
    object's where following the shift matches the other image better than following the base flow,
    compared pixel by pixel (barely blurred: the outline is sharp)."""
    height, width = source.shape
    grid_x, grid_y = pixel_grid(width, height)
    source_f = source.astype(np.float32)

    def error(map_x: Plane, map_y: Plane) -> Plane:
        followed = cv2.remap(target, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        return np.asarray(
            cv2.GaussianBlur(np.abs(source_f - followed.astype(np.float32)), (0, 0), _EDGE_BLUR_SIGMA), np.float32
        )

    by_shift = error(grid_x + np.float32(shift[0]), grid_y + np.float32(shift[1]))
    by_base = error(grid_x + base[..., 0], grid_y + base[..., 1])
    near = cv2.dilate(mask.astype(np.uint8), cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (_GROW_PX * 2 + 1,) * 2)) > 0
    return mask | (near & (by_shift < by_base))


def behind_layers(flow: TwoWayFlow, layers: list[MovingLayer]) -> TwoWayFlow:
    """`flow` for what is behind the layers: zero (the camera's motion) on and around each object.

    DIS smooths its flow across an object's outline, so around an object it has found, the flow of the
    background next to it carries part of the object's motion, and following it there smears the
    background that the object uncovers or covers. The layers move the object; behind it, nothing moves
    but the camera."""
    if not layers:
        return flow
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * _BEHIND_PX + 1,) * 2)
    keep_forward = np.ones(flow.forward.shape[:2], dtype=np.float32)
    keep_backward = np.ones_like(keep_forward)
    for layer in layers:
        for keep, mask in ((keep_forward, layer.mask_a), (keep_backward, layer.mask_b)):
            around = cv2.dilate((mask > 0.5).astype(np.uint8), kernel).astype(np.float32)
            keep *= 1.0 - np.asarray(cv2.GaussianBlur(around, (0, 0), 2.0), dtype=np.float32)
    return replace(
        flow,
        forward=np.asarray(flow.forward * keep_forward[..., None], dtype=np.float32),
        backward=np.asarray(flow.backward * keep_backward[..., None], dtype=np.float32),
    )


def _chosen(fields: list[FlowField], choice: npt.NDArray[np.intp]) -> FlowField:
    result = fields[0].copy()
    for index, field in enumerate(fields[1:], start=1):
        here = choice == index
        result[here] = field[here]
    return result


def _tolerance(shift: tuple[float, float]) -> float:
    return max(_LAYER_TOLERANCE_PX, _LAYER_TOLERANCE_REL * float(np.hypot(*shift)))


def _near(flow: FlowField, shift: tuple[float, float]) -> npt.NDArray[np.bool_]:
    """Where `flow` is the translation `shift`, to within the layer's tolerance."""
    distance = np.hypot(flow[..., 0] - shift[0], flow[..., 1] - shift[1])
    return np.asarray(distance < _tolerance(shift), dtype=bool)


def _changed(source: Gray, target: Gray) -> npt.NDArray[np.bool_]:
    difference = np.abs(source.astype(np.float32) - target.astype(np.float32))
    return np.asarray(cv2.GaussianBlur(difference, (0, 0), _CHANGED_BLUR_SIGMA) > _CHANGED_GREY, dtype=bool)


def _clean(mask: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
    """Specks removed and pinholes filled: a layer is an object, not scattered chance matches."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    opened = cv2.morphologyEx(mask.astype(np.uint8), cv2.MORPH_OPEN, kernel)
    return np.asarray(cv2.morphologyEx(opened, cv2.MORPH_CLOSE, kernel), dtype=np.uint8) > 0


def _feathered(mask: npt.NDArray[np.bool_]) -> Plane:
    return np.asarray(cv2.GaussianBlur(mask.astype(np.float32), (0, 0), _LAYER_FEATHER_SIGMA), dtype=np.float32)


def _flow_from(dis: cv2.DISOpticalFlow, source: Gray, target: Gray, start: tuple[float, float]) -> FlowField:
    """DIS flow from `source` to `target` starting at the translation `start`: the target is shifted by it
    first (this OpenCV's DIS takes no initial flow), so DIS only has the remainder to find."""
    dx, dy = start
    height, width = source.shape
    # shifted(x) = target(x + start)
    shift = np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]])
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    shifted = cv2.warpAffine(target, shift, (width, height), flags=flags, borderMode=cv2.BORDER_REPLICATE)
    remainder = np.zeros((height, width, 2), dtype=np.float32)
    dis.calc(source, np.asarray(shifted, dtype=np.uint8), remainder)
    remainder[..., 0] += dx
    remainder[..., 1] += dy
    return remainder


def _fuse(source: Gray, target: Gray, fields: list[FlowField]) -> npt.NDArray[np.intp]:
    """Per pixel of `source`, which field (0: the base) best carries it onto `target`."""
    height, width = source.shape
    grid_x, grid_y = pixel_grid(width, height)
    source_f = source.astype(np.float32)
    costs = []
    for field in fields:
        followed = cv2.remap(
            target, grid_x + field[..., 0], grid_y + field[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        difference = np.abs(source_f - followed.astype(np.float32))
        costs.append(np.asarray(cv2.GaussianBlur(difference, (0, 0), _FUSE_BLUR_SIGMA), dtype=np.float32))
    base_cost = costs[0]
    # A candidate must beat the base by the margin; among those that do, the lowest cost wins.
    stacked = np.stack(
        [base_cost]
        + [
            np.where((cost < base_cost - _FUSE_MARGIN_GREY) & (cost < _FUSE_MAX_SHARE * base_cost), cost, np.inf)
            for cost in costs[1:]
        ]
    )
    return np.asarray(np.argmin(stacked, axis=0), dtype=np.intp)
