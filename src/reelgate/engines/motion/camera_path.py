"""The camera path between two frames: the homography A -> B interpolated as a camera would move.

Blending the matrix entries (I + t (H - I)) is not a camera move: a rotation shrinks the picture
half-way, a zoom runs at an uneven pace. Instead, in coordinates centred on the frame, H is split
into a similarity (zoom s, roll theta, shift) and a near-identity rest (shear, aspect, keystone):

    H_c = S P        S = [s R(theta) | d]        P = S^-1 H_c

and the frame at time t is H_t = S_t P_t with

- zoom s^t (a constant zoom rate; the apparent size changes by the same factor every frame),
- roll t * theta,
- the camera's centre moving at constant speed over the scene: the scene point shown at the frame
  centre travels on a straight line at constant speed whatever the zoom and roll, which gives
  S_t's shift as t * s^(t-1) R((t-1) theta) d. The same path read backwards (B to A) is the same
  path, so neither end is privileged,
- P_t = exp(t log P), the principal matrix power, so the keystone also grows at a constant rate.

H_0 = I and H_1 = H exactly, so the path starts on A and ends on B. A pure zoom, pan or roll of the
frame is reproduced exactly.
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


def _rotation(angle: float) -> Matrix:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s], [s, c]])


def _similarity(zoom: float, angle: float, shift: npt.NDArray[np.float64]) -> Matrix:
    result = np.eye(3)
    result[:2, :2] = zoom * _rotation(angle)
    result[:2, 2] = shift
    return result


class HomographyPath:
    """`at(t)` is the homography from A's pixels to the frame at time t, t in [0, 1]."""

    def __init__(self, matrix: Matrix, width: int, height: int) -> None:
        centre = np.array([[1.0, 0.0, (width - 1) / 2], [0.0, 1.0, (height - 1) / 2], [0.0, 0.0, 1.0]])
        self._to_pixels = centre
        self._to_centred = np.linalg.inv(centre)
        centred = self._to_centred @ matrix @ centre
        centred = centred / centred[2, 2]
        # The similarity closest to H's local behaviour at the frame centre (its Jacobian there).
        linear, shift, perspective = centred[:2, :2], centred[:2, 2], centred[2, :2]
        jacobian = linear - np.outer(shift, perspective)
        a = (jacobian[0, 0] + jacobian[1, 1]) / 2
        b = (jacobian[1, 0] - jacobian[0, 1]) / 2
        self.zoom = math.hypot(a, b)
        self.angle = math.atan2(b, a)
        self.shift = shift.copy()
        rest = np.linalg.inv(_similarity(self.zoom, self.angle, shift)) @ centred
        # A homography is defined up to scale; unit determinant makes the log a pure shape change.
        rest = rest / np.cbrt(np.linalg.det(rest))
        self._log_rest = logm(rest)

    def at(self, t: float) -> Matrix:
        if t == 0.0:
            return np.eye(3)
        zoom_t = self.zoom**t
        shift_t = t * self.zoom ** (t - 1) * (_rotation((t - 1) * self.angle) @ self.shift)
        similarity = _similarity(zoom_t, t * self.angle, shift_t)
        centred = similarity @ expm(t * self._log_rest)
        result = self._to_pixels @ centred @ self._to_centred
        return np.asarray(result / result[2, 2], dtype=np.float64)
