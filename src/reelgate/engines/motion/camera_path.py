"""The camera path between two frames: the motion A -> B interpolated as one steady camera move.

A steady camera does the same thing every frame: the motion from one frame to the next is one fixed
transform G, so the frame at time t is A moved by G^(t * frames). The path from A to B is therefore
the matrix power of the whole fitted transform (a similarity or a homography, `morph` chooses):

    H_t = H^t = exp(t log H)          (principal logarithm; H_0 = I, H_1 = H)

What stays fixed between A and B stays fixed in every frame: a push toward a point anywhere in the
frame keeps that point still (its focus of expansion), a roll about an off-centre point turns about it,
a pure pan moves at constant speed, and the zoom changes by the same factor every frame (s^t) while the
roll turns at a constant rate (t theta). Pure zooms, pans and rolls (about any point) are reproduced
exactly, and so is any steady move of a camera turning on a tripod (K R(omega t) K^-1 is such a power).

Why not split H about the frame centre into zoom, roll and a moving centre (the earlier path): a push
toward an off-centre point keeps that point fixed, so the frame centre does not move at constant speed
over the scene; the split path drifted through the middle of such a move and was exact only at the ends
and for moves about the centre. What two frames cannot tell is the pace of the move inside the pair
(a dolly's magnification grows as 1 / (1 - v t), a zoom lens may be driven at any speed, a camera may
pan while zooming about the centre): the steady move is the one path fixed by the two frames alone.

The logarithm and exponential are computed in coordinates centred on the frame and scaled by its half
diagonal, where the translation part is of the same order as the rest, which keeps both well conditioned.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float64]

_SERIES_TERMS = 18
_NEAR_IDENTITY = 0.25  # the log series converges fast once ||M - I|| is below this
_MAX_SQUARE_ROOTS = 12


def expm(matrix: Matrix) -> Matrix:
    """Matrix exponential by scaling and squaring a Taylor series (3 x 3, so no library is needed)."""
    norm = float(np.abs(matrix).sum(axis=1).max())
    squarings = max(0, math.ceil(math.log2(norm / 0.5))) if norm > 0.5 else 0
    scaled = matrix / (2**squarings)
    result = np.eye(3)
    term = np.eye(3)
    for k in range(1, _SERIES_TERMS):
        term = term @ scaled / k
        result = result + term
    for _ in range(squarings):
        result = result @ result
    return result


def _sqrtm(matrix: Matrix) -> Matrix:
    """Principal square root by the Denman-Beavers iteration (converges for matrices near identity)."""
    y, z = matrix.copy(), np.eye(3)
    for _ in range(60):
        y_next = 0.5 * (y + np.linalg.inv(z))
        z = 0.5 * (z + np.linalg.inv(y))
        if np.abs(y_next - y).max() < 1e-15:
            return y_next
        y = y_next
    return y


def logm(matrix: Matrix) -> Matrix:
    """Principal matrix logarithm by inverse scaling and squaring, for matrices with a real log.

    Square roots pull M towards identity until the series log(I + X) converges quickly; each root
    halves the logarithm, so the result is scaled back by 2^k.
    """
    current = matrix.copy()
    roots = 0
    while np.abs(current - np.eye(3)).max() > _NEAR_IDENTITY and roots < _MAX_SQUARE_ROOTS:
        current = _sqrtm(current)
        roots += 1
    x = current - np.eye(3)
    result = np.zeros((3, 3))
    power = np.eye(3)
    for k in range(1, _SERIES_TERMS):
        power = power @ x
        result = result + ((-1) ** (k + 1)) * power / k
    return np.asarray(result * (2**roots), dtype=np.float64)


class HomographyPath:
    """`at(t)` is the homography from A's pixels to the frame at time t, t in [0, 1]: H^t."""

    def __init__(self, matrix: Matrix, width: int, height: int) -> None:
        half_diagonal = math.hypot(width, height) / 2
        to_pixels = np.array(
            [[half_diagonal, 0.0, (width - 1) / 2], [0.0, half_diagonal, (height - 1) / 2], [0.0, 0.0, 1.0]]
        )
        self._to_pixels = to_pixels
        self._to_normalised = np.linalg.inv(to_pixels)
        normalised = self._to_normalised @ matrix @ to_pixels
        # A homography is defined up to scale; unit determinant puts it in SL(3), where its principal
        # logarithm is the generator of the steady move (for an affine map, only a common factor changes).
        normalised = normalised / np.cbrt(np.linalg.det(normalised))
        self._log = logm(normalised)
        self.matrix = np.asarray(matrix / matrix[2, 2], dtype=np.float64)

    def at(self, t: float) -> Matrix:
        if t == 0.0:
            return np.eye(3)
        if t == 1.0:
            return self.matrix
        result = self._to_pixels @ expm(t * self._log) @ self._to_normalised
        return np.asarray(result / result[2, 2], dtype=np.float64)
