"""The global camera model between two frames: a homography, fitted on features, refined on pixels.

A homography is exactly what a camera that only rotates and zooms does to any scene, and what any
camera move does to a flat one, so it explains most of what happens between a first and a last frame
that a person framed. It is estimated in two steps at a reduced working size:

1. ORB features matched with Lowe's ratio test, and a robust fit (MAGSAC++ through
   `cv2.findHomography`): fast, and wide in what it can find (large pans, zooms, rotations).
2. ECC (`cv2.findTransformECC`, MOTION_HOMOGRAPHY) on a small image pyramid, starting from the fit:
   it aligns the pixels themselves, to a fraction of a working pixel, and its score, a correlation of
   zero-mean normalised intensities, ignores brightness and contrast changes.

Every matrix here maps pixel coordinates of A to those of B (`x_B ~ H x_A`), with pixel centres at
integer coordinates, as OpenCV's warps use them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float64]  # 3 x 3
Gray = npt.NDArray[np.uint8]

# Enough matches to tell a real camera model from a chance alignment of a few keypoints; calibrated
# on scikit-image photos: related pairs keep hundreds of inliers, unrelated ones a dozen at most.
MIN_INLIERS = 40
MIN_INLIER_SHARE = 0.25
# ECC correlation (zero-mean, normalised, so brightness changes do not lower it) the aligned images
# must reach for the camera model to be trusted. Related pairs with moving objects score 0.7-1.0;
# unrelated photos that happened to pass the feature test cannot reach it.
MIN_ALIGNED_CORRELATION = 0.6
# Beyond these the "camera model" would be a degenerate fold or an extreme zoom, never a real move.
_MAX_SCALE_CHANGE = 4.0
# The projective divisor may vary this much across the frame: a keystone of a tilted camera is
# fine, a vanishing line near the frame is not a camera move anybody filmed.
_MAX_PERSPECTIVE_SPAN = 0.5

_ORB_FEATURES = 3000
# Smooth or small images give FAST's default threshold (20) few corners; below this many keypoints in
# either image the detection is run again with a lower threshold, which finds the weaker corners too
# (a 1.35x push into a corner of a 320x180 photo kept 35 inliers at the default, 130 at 5).
_FEW_KEYPOINTS = 1000
_LOW_FAST_THRESHOLD = 5
_RATIO_TEST = 0.8
_RANSAC_THRESHOLD_PX = 2.0
_ECC_LEVELS = 3  # 1/4, 1/2, 1 of the working size
_ECC_ITERATIONS = 150
_ECC_EPSILON = 1e-5
# ECC refines the features' fit by a fraction of a pixel; a refinement that moves the inlier features
# further than this (median, working px) from their matches has fitted something else.
_ECC_MAX_DRIFT_PX = 1.5


@dataclass(frozen=True)
class CameraFit:
    """The outcome of the estimation, kept whole so `info` can say why a fit was (not) trusted."""

    matrix: Matrix | None  # A -> B in working pixels; None when no trustworthy model was found
    inliers: int
    correlation: float  # ECC correlation of A and B aligned by `matrix` (0 without a model)


def scale_matrix(sx: float, sy: float) -> Matrix:
    """Maps pixel coordinates of an image to those of the same image resized by (sx, sy).

    Pixel centres sit at integer coordinates, so a centre x moves to (x + 0.5) * s - 0.5, exactly as
    cv2.resize places them.
    """
    return np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])


def rescale(matrix: Matrix, sx: float, sy: float) -> Matrix:
    """The same geometric mapping, expressed for both images resized by (sx, sy)."""
    scale = scale_matrix(sx, sy)
    result = scale @ matrix @ np.linalg.inv(scale)
    return np.asarray(result / result[2, 2], dtype=np.float64)


def estimate_camera(a: Gray, b: Gray) -> CameraFit:
    """The homography taking A to B, or no model when the pair does not support one."""
    fitted = _fit_on_features(a, b)
    if fitted is None:
        return CameraFit(matrix=None, inliers=0, correlation=0.0)
    initial, inliers, src, dst = fitted
    refined, correlation = _refine_with_ecc(a, b, initial)
    if refined is not initial and _median_error_px(refined, src, dst) > _ECC_MAX_DRIFT_PX:
        # ECC followed something else than the features agreed on: a moving object with strong edges
        # pulls the pixels' fit toward its own motion (measured: a 64 px keystone for a still camera
        # behind a disc moving 40 px). The features' fit stands.
        refined, correlation = initial, aligned_correlation(a, b, initial)
    if correlation < MIN_ALIGNED_CORRELATION or not is_plausible(refined, a.shape[1], a.shape[0]):
        return CameraFit(matrix=None, inliers=inliers, correlation=correlation)
    return CameraFit(matrix=refined, inliers=inliers, correlation=correlation)


def _median_error_px(matrix: Matrix, src: npt.NDArray[np.float32], dst: npt.NDArray[np.float32]) -> float:
    """The median distance between where `matrix` puts the inlier features of A and their matches in B."""
    mapped = cv2.perspectiveTransform(src.reshape(-1, 1, 2).astype(np.float64), matrix).reshape(-1, 2)
    return float(np.median(np.hypot(*(mapped - dst.astype(np.float64)).T)))


def _fit_on_features(a: Gray, b: Gray) -> tuple[Matrix, int, npt.NDArray[np.float32], npt.NDArray[np.float32]] | None:
    """The features' homography, its inlier count, and the inlier points in A and in B."""
    orb = cv2.ORB.create(nfeatures=_ORB_FEATURES)
    keys_a, desc_a = orb.detectAndCompute(a, None)
    keys_b, desc_b = orb.detectAndCompute(b, None)
    if min(len(keys_a), len(keys_b)) < _FEW_KEYPOINTS:
        orb = cv2.ORB.create(nfeatures=_ORB_FEATURES, fastThreshold=_LOW_FAST_THRESHOLD)
        keys_a, desc_a = orb.detectAndCompute(a, None)
        keys_b, desc_b = orb.detectAndCompute(b, None)
    if desc_a is None or desc_b is None or len(keys_a) < MIN_INLIERS or len(keys_b) < MIN_INLIERS:
        return None
    matcher = cv2.BFMatcher(cv2.NORM_HAMMING)
    pairs = matcher.knnMatch(desc_a, desc_b, k=2)
    good = [p[0] for p in pairs if len(p) == 2 and p[0].distance < _RATIO_TEST * p[1].distance]
    if len(good) < MIN_INLIERS:
        return None
    src = np.array([keys_a[m.queryIdx].pt for m in good], dtype=np.float32)
    dst = np.array([keys_b[m.trainIdx].pt for m in good], dtype=np.float32)
    # MAGSAC++ seeds its sampler with a fixed state, so the same pair always gives the same model.
    matrix, mask = cv2.findHomography(src, dst, cv2.USAC_MAGSAC, _RANSAC_THRESHOLD_PX, maxIters=2000, confidence=0.999)
    if matrix is None or mask is None:
        return None
    inliers = int(mask.sum())
    if inliers < MIN_INLIERS or inliers < MIN_INLIER_SHARE * len(good):
        return None
    chosen = mask.ravel() > 0
    return np.asarray(matrix, dtype=np.float64), inliers, src[chosen], dst[chosen]


def _refine_with_ecc(a: Gray, b: Gray, initial: Matrix) -> tuple[Matrix, float]:
    """Coarse-to-fine ECC from `initial`; keeps the better of the two by ECC's own score."""
    # ECC wants float images; a light blur widens its basin of convergence at each level.
    pyramid_a, pyramid_b = [a], [b]
    for _ in range(_ECC_LEVELS - 1):
        pyramid_a.insert(0, np.asarray(cv2.pyrDown(pyramid_a[0]), dtype=np.uint8))
        pyramid_b.insert(0, np.asarray(cv2.pyrDown(pyramid_b[0]), dtype=np.uint8))
    full_h, full_w = a.shape
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, _ECC_ITERATIONS, _ECC_EPSILON)
    matrix = initial
    for level_a, level_b in zip(pyramid_a, pyramid_b, strict=True):
        h, w = level_a.shape
        at_level = rescale(matrix, w / full_w, h / full_h).astype(np.float32)
        # Only the part of A that B also shows has a partner; the rest would pull the fit off.
        covered = _covered(level_b, at_level.astype(np.float64), w, h)
        try:
            _, refined = cv2.findTransformECC(level_a, level_b, at_level, cv2.MOTION_HOMOGRAPHY, criteria, covered, 3)
        except cv2.error:
            # ECC gives up on a flat or badly conditioned level; the estimate so far still stands.
            continue
        matrix = rescale(np.asarray(refined, dtype=np.float64), full_w / w, full_h / h)
    refined_score = aligned_correlation(a, b, matrix)
    initial_score = aligned_correlation(a, b, initial)
    return (matrix, refined_score) if refined_score >= initial_score else (initial, initial_score)


def aligned_correlation(a: Gray, b: Gray, matrix: Matrix) -> float:
    """ECC's score of A against B pulled into A's frame by `matrix`, over the pixels B covers."""
    h, w = a.shape
    # WARP_INVERSE_MAP: output pixel x samples B at matrix @ x, i.e. B seen from A's frame.
    warped = cv2.warpPerspective(b, matrix, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
    covered = _covered(b, matrix, w, h)
    if int(np.count_nonzero(covered)) < 0.1 * h * w:
        return 0.0
    return float(cv2.computeECC(a, warped, covered))


def _covered(b: Gray, matrix: Matrix, width: int, height: int) -> Gray:
    """255 where A's pixel lands inside B under `matrix` (one pixel in from B's edge), else 0."""
    inner = np.zeros_like(b)
    inner[1:-1, 1:-1] = 255
    covered = cv2.warpPerspective(inner, matrix, (width, height), flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP)
    return np.asarray(covered, dtype=np.uint8)


def is_plausible(matrix: Matrix, width: int, height: int) -> bool:
    """A camera could have made it: orientation kept, no fold, no absurd zoom or perspective."""
    if not np.all(np.isfinite(matrix)) or abs(matrix[2, 2]) < 1e-12:
        return False
    normalised = matrix / matrix[2, 2]
    # How much the projective divisor changes across the frame: 0 for an affine map.
    if abs(normalised[2, 0]) * width + abs(normalised[2, 1]) * height > _MAX_PERSPECTIVE_SPAN:
        return False
    corners = np.array([[0, 0, 1], [width - 1, 0, 1], [width - 1, height - 1, 1], [0, height - 1, 1]], dtype=np.float64)
    mapped = corners @ normalised.T
    if np.any(mapped[:, 2] <= 0):
        return False  # a corner crosses the horizon: the plane would be seen from behind
    quad = mapped[:, :2] / mapped[:, 2:3]
    # The corners must stay in the same (clockwise) order, i.e. the quad is convex and not mirrored.
    edges = np.roll(quad, -1, axis=0) - quad
    turns = edges[:, 0] * np.roll(edges, -1, axis=0)[:, 1] - edges[:, 1] * np.roll(edges, -1, axis=0)[:, 0]
    if not np.all(turns > 0):
        return False
    area_ratio = abs(float(np.linalg.det(normalised[:2, :2])))
    return 1.0 / _MAX_SCALE_CHANGE**2 <= area_ratio <= _MAX_SCALE_CHANGE**2


# The camera model is the full homography only when it explains the pair clearly better than the
# similarity closest to it: it must leave at most this share of what the similarity leaves unexplained
# (1 - ECC correlation, over the pixels both show). On zooms, pans and rolls of scikit-image photos the
# similarity leaves as little or less (ratio 1.0-1.4: the homography's four extra degrees of freedom fit
# noise, up to 1.7 px off the true move at the corners, against 0.2-0.8 px for the similarity); a camera
# turning on a tripod by 1-8 degrees (a keystone) gives 0.004-0.23.
HOMOGRAPHY_RESIDUAL_SHARE = 0.7
# ECC's correlation of an exact match rounds to 1 (or a hair above): below this floor what is left
# unexplained is rounding, and no model explains rounding better than another.
_UNEXPLAINED_FLOOR = 1e-5
_SIMILARITY_GRID = 17


def nearest_similarity(matrix: Matrix, width: int, height: int) -> tuple[Matrix, float]:
    """The similarity (zoom, roll, shift) closest to `matrix` where the fit was made: by least squares on a
    grid of points of A that `matrix` maps inside B (outside, the homography is an extrapolation, and its
    keystone there is noise), and the largest distance between where the two put such a point, in pixels."""
    xs, ys = np.meshgrid(np.linspace(0, width - 1, _SIMILARITY_GRID), np.linspace(0, height - 1, _SIMILARITY_GRID))
    points = np.stack([xs.ravel(), ys.ravel(), np.ones(xs.size)])
    mapped = matrix @ points
    target = mapped[:2] / mapped[2]
    inside = (target[0] >= 0) & (target[0] <= width - 1) & (target[1] >= 0) & (target[1] <= height - 1)
    if int(inside.sum()) < _SIMILARITY_GRID:  # too little overlap to choose points: use the whole frame
        inside = np.ones_like(inside)
    # A similarity is w = a z + b in complex numbers: linear in (a, b), so one least-squares solve.
    z = points[0][inside] + 1j * points[1][inside]
    w = target[0][inside] + 1j * target[1][inside]
    design = np.stack([z, np.ones_like(z)], axis=1)
    (a, b), *_ = np.linalg.lstsq(design, w, rcond=None)
    similarity = np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag], [0.0, 0.0, 1.0]])
    deviation = float(np.abs(design @ np.array([a, b]) - w).max())
    return similarity, deviation


def choose_camera_model(a: Gray, b: Gray, fit: CameraFit) -> tuple[str, Matrix, float]:
    """("similarity" | "homography", its matrix, the similarity's largest deviation from the fit in px)."""
    assert fit.matrix is not None
    height, width = a.shape
    similarity, deviation = nearest_similarity(fit.matrix, width, height)
    unexplained_by_similarity = max(1.0 - aligned_correlation(a, b, similarity), _UNEXPLAINED_FLOOR)
    unexplained_by_homography = max(1.0 - fit.correlation, _UNEXPLAINED_FLOOR)
    if unexplained_by_homography < HOMOGRAPHY_RESIDUAL_SHARE * unexplained_by_similarity:
        return "homography", fit.matrix, deviation
    return "similarity", similarity, deviation
