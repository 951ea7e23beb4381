"""Frames between A and B from a layered motion model: a camera path plus a residual flow.

For an output pixel y of the frame at time t:

1. The camera path takes it back to A's frame: z = H_t^-1 y (`camera_path.HomographyPath`).
2. In A's frame, where B has been pulled in by the camera model ("B registered"), the residual flow
   says what the camera does not explain. Its linear-motion estimates from time t back to A and on to
   B (Jiang et al., "Super SloMo", 2018) give the two sample points:

       F_t0 = -(1-t) t F_AB + t^2 F_BA          p_A = z + F_t0(z)
       F_t1 = (1-t)^2 F_AB - t (1-t) F_BA        p_B = H (z + F_t1(z))

3. The frame blends A(p_A) and B(p_B) with weights (1-t) and t, each scaled by occlusion awareness:
   a sample is only as good as its partner says. Where the A-side sample is a pixel of A that B does
   not show (round trip of the residual flow fails, or the camera takes it out of B's frame), the
   B-side sample shows something else, so B's weight drops, and the other way round. A sample point
   outside its own image (content neither image has at that spot) gets no weight at all while the
   other one is inside.

The sampling maps and weights are computed on a working grid (half the output size at 720p) and
upsampled: the camera part is smooth, and the residual flow was estimated at that size anyway. At
t = 0 the frame is A and at t = 1 it is B, exactly.

Frames are rendered in a `planes.Layout`: RGB, or straight in the encoder's yuv420p (the engine's
path: half the samples per warp, and no conversion per frame). The geometry is the same for both;
each plane is warped by the frame's mapping expressed in its own pixels. A camera alone (no residual)
is a homography per frame, warped by OpenCV directly; a similarity is affine, and warped as such.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from reelgate.engines.base import RGBImage
from reelgate.engines.motion.camera_path import HomographyPath, Matrix
from reelgate.engines.motion.flow import FlowField, Plane
from reelgate.engines.motion.planes import Layout, as_frame, frame_buffer, plane_matrix, sources_planes

# Weight a sample keeps even when its partner says it is occluded: a wrong verdict then costs a
# faint ghost, never a hole.
_OCCLUSION_FLOOR = 0.05
# Samples fade out over this many pixels as they approach the edge of their image, so the seam
# between "from A" and "from B" regions is soft.
_EDGE_FADE_PX = 2.0
# Where neither image has the scene, an image's share halves every ~0.7 of this (a share of the frame's half
# diagonal: 8 px at 448x252) of its sample lying further outside its image than the other's (`_fallback`).
_FILL_FALLOFF_SHARE = 0.03


@dataclass(frozen=True)
class ObjectLayer:
    """An object moving by one translation (output pixels) between A and B registered to A, in front of
    the rest; its mattes on the working grid: where it is in A (`mask_a`) and in B registered (`mask_b`)."""

    shift: tuple[float, float]
    mask_a: Plane
    mask_b: Plane


@dataclass(frozen=True)
class ResidualFlow:
    """The residual flow on the working grid, in output pixels, between A and B registered to A."""

    forward: FlowField  # A -> B registered
    backward: FlowField  # B registered -> A
    visible_forward: Plane  # 0..1: A's pixel is seen in B
    visible_backward: Plane  # 0..1: B registered's pixel is seen in A
    # Objects moving further than the flow follows (`large_motion`), composited over the rest.
    layers: tuple[ObjectLayer, ...] = ()


class LayeredMorph:
    """`frame_at(t)`: the frame at time t in [0, 1]; `frame_at(0)` is A and `frame_at(1)` is B."""

    def __init__(
        self,
        a: RGBImage,
        b: RGBImage,
        camera: Matrix,
        residual: ResidualFlow | None,
        work_size: tuple[int, int],
        layout: Layout = "rgb",
    ) -> None:
        if a.shape != b.shape:
            raise ValueError(f"morph needs same-size images, got {a.shape} and {b.shape}")
        self.a = a
        self.b = b
        self.height, self.width = a.shape[:2]
        self.camera = camera
        self.path = HomographyPath(camera, self.width, self.height)
        self.residual = residual
        self.work_size = work_size
        self.layout: Layout = layout
        # A similarity (or any affine camera) keeps every frame affine: warpAffine, no projective divide.
        self._affine = bool(np.all(camera[2, :2] == 0.0))
        # Converted once (one ffmpeg run for both): every frame is warped from these planes.
        self._planes_a, self._planes_b = sources_planes([a, b], layout)
        work_w, work_h = work_size
        self._step_x = self.width / work_w
        self._step_y = self.height / work_h
        # Working grid cell centres, in output pixel coordinates (cv2.resize's centre convention).
        xs = (np.arange(work_w, dtype=np.float32) + 0.5) * self._step_x - 0.5
        ys = (np.arange(work_h, dtype=np.float32) + 0.5) * self._step_y - 0.5
        self._grid_x, self._grid_y = np.meshgrid(xs, ys)
        self._grid_to_output = np.array(
            [[self._step_x, 0.0, 0.5 * self._step_x - 0.5], [0.0, self._step_y, 0.5 * self._step_y - 0.5], [0, 0, 1.0]]
        )
        # `_inside` at every pixel of an image: sampled between pixels it is the same ramp (to within the
        # kinks half a pixel in), and zero past the edge.
        pixels_x, pixels_y = np.meshgrid(
            np.arange(self.width, dtype=np.float32), np.arange(self.height, dtype=np.float32)
        )
        self._ramp = self._inside(pixels_x, pixels_y) if residual is None else np.zeros((1, 1), np.float32)

    def in_layout(self, layout: Layout) -> LayeredMorph:
        """The same morph rendering frames in `layout` (A and B are converted once, here)."""
        if layout == self.layout:
            return self
        return LayeredMorph(self.a, self.b, self.camera, self.residual, self.work_size, layout)

    def frame_at(self, t: float) -> npt.NDArray[np.uint8]:
        if t <= 0.0:
            return as_frame(self._planes_a, self.layout)
        if t >= 1.0:
            return as_frame(self._planes_b, self.layout)
        to_a_frame = np.asarray(np.linalg.inv(self.path.at(t)), dtype=np.float64)
        if self._affine:
            to_a_frame[2] = (0.0, 0.0, 1.0)  # exact: the inverse of an affine map is affine
        to_b_frame = self.camera @ to_a_frame
        if self.residual is None:
            # The camera alone: how far inside its image each sample lies is the edge ramp of that image
            # seen through the frame's mapping, one warp of the ramp at the working size per image.
            weight_a = (1.0 - t) * self._ramp_through(to_a_frame) * (1.0 + _OCCLUSION_FLOOR)
            weight_b = t * self._ramp_through(to_b_frame) * (1.0 + _OCCLUSION_FLOOR)
            maps = None
        else:
            z_x, z_y = _apply(to_a_frame, self._grid_x, self._grid_y)
            index_x, index_y = self._work_index(z_x, z_y)
            forward = _sample(self.residual.forward, index_x, index_y)
            backward = _sample(self.residual.backward, index_x, index_y)
            to_a = -(1.0 - t) * t * forward + t * t * backward
            to_b = (1.0 - t) ** 2 * forward - t * (1.0 - t) * backward
            a_x, a_y = z_x + to_a[..., 0], z_y + to_a[..., 1]
            b_x, b_y = z_x + to_b[..., 0], z_y + to_b[..., 1]
            seen_a = _sample(self.residual.visible_forward, *self._work_index(a_x, a_y))
            seen_b = _sample(self.residual.visible_backward, *self._work_index(b_x, b_y))
            trust_a = _OCCLUSION_FLOOR + seen_b
            trust_b = _OCCLUSION_FLOOR + seen_a
            for layer in self.residual.layers:
                # Behind the object, a sample that lands on it in its image shows the object, not what is
                # behind: it loses its weight to the other image.
                trust_a = trust_a * (1.0 - _sample(layer.mask_a, *self._work_index(a_x, a_y)))
                trust_b = trust_b * (1.0 - _sample(layer.mask_b, *self._work_index(b_x, b_y)))
            for layer in self.residual.layers:
                a_x, a_y, b_x, b_y, trust_a, trust_b = self._composite(
                    layer, t, z_x, z_y, (a_x, a_y, b_x, b_y, trust_a, trust_b)
                )
            b_x, b_y = _apply(self.camera, b_x, b_y)
            weight_a = (1.0 - t) * self._inside(a_x, a_y) * trust_a
            weight_b = t * self._inside(b_x, b_y) * trust_b
            maps = np.dstack([a_x, a_y, b_x, b_y])
        # Where neither sample is inside its image, the frame shows scene neither image has (`_fallback`).
        # Elsewhere a weight this small changes nothing; it only keeps cv2.blendLinear off 0 / 0.
        rows, cols = np.nonzero((weight_a <= 0.0) & (weight_b <= 0.0))
        weight_a = np.ascontiguousarray(weight_a + 1e-4 * (1.0 - t), dtype=np.float32)
        weight_b = np.ascontiguousarray(weight_b + 1e-4 * t, dtype=np.float32)
        if rows.size:
            # Only those cells' sample points are needed (a few percent of the frame at most).
            if maps is None:
                grid_x, grid_y = self._grid_x[rows, cols], self._grid_y[rows, cols]
                a_points, b_points = _apply(to_a_frame, grid_x, grid_y), _apply(to_b_frame, grid_x, grid_y)
            else:
                a_points = (maps[rows, cols, 0], maps[rows, cols, 1])
                b_points = (maps[rows, cols, 2], maps[rows, cols, 3])
            weight_a[rows, cols], weight_b[rows, cols] = self._fallback(t, a_points, b_points)
        frame, targets = frame_buffer(self.width, self.height, self.layout)
        for source_a, source_b, scale, target in zip(
            self._planes_a.planes, self._planes_b.planes, self._planes_a.scales, targets, strict=True
        ):
            size = (target.shape[1], target.shape[0])
            # The chroma planes of 720p are the working grid's size: their weights need no resize.
            plane_weight_a, plane_weight_b = weight_a, weight_b
            if size != (weight_a.shape[1], weight_a.shape[0]):
                plane_weight_a = np.asarray(cv2.resize(weight_a, size, interpolation=cv2.INTER_LINEAR), np.float32)
                plane_weight_b = np.asarray(cv2.resize(weight_b, size, interpolation=cv2.INTER_LINEAR), np.float32)
            if maps is None:
                from_a = self._warp(source_a, to_a_frame, scale, size)
                from_b = self._warp(source_b, to_b_frame, scale, size)
            else:
                map_a_x, map_a_y, map_b_x, map_b_y = self._plane_maps(maps, scale, size)
                # Replicate, not a constant: a sample past the edge (weighted out anyway) is never black.
                from_a = np.asarray(
                    cv2.remap(source_a, map_a_x, map_a_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
                    dtype=np.uint8,
                )
                from_b = np.asarray(
                    cv2.remap(source_b, map_b_x, map_b_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE),
                    dtype=np.uint8,
                )
            cv2.blendLinear(from_a, from_b, plane_weight_a, plane_weight_b, dst=target)
        return frame

    def _fallback(self, t: float, a_points: tuple[Plane, Plane], b_points: tuple[Plane, Plane]) -> tuple[Plane, Plane]:
        """The weights where neither sample is inside its image: scene neither image has.

        Both samples there are an edge of their image drawn out (replicated). The edge nearer to the point
        is the better guess of what lies there, so each image's share falls off with how far further
        outside its image its sample lies than the other's. The weights are whole (they sum to 1): cv2.
        blendLinear divides by their sum plus 1e-5, so the 1e-4 weights used before darkened such scene
        by 9%.
        """
        outside_a, outside_b = self._outside(*a_points), self._outside(*b_points)
        nearer = np.minimum(outside_a, outside_b)
        falloff = _FILL_FALLOFF_SHARE * math.hypot(self.width, self.height) / 2
        share_a = (1.0 - t) * np.exp(-(outside_a - nearer) / falloff)
        share_b = t * np.exp(-(outside_b - nearer) / falloff)
        total = share_a + share_b
        return np.asarray(share_a / total, np.float32), np.asarray(share_b / total, np.float32)

    def _outside(self, x: Plane, y: Plane) -> Plane:
        """How far outside the image each point lies (0 inside), in pixels along the worse axis."""
        over_x = np.maximum(-0.5 - x, x - (self.width - 0.5))
        over_y = np.maximum(-0.5 - y, y - (self.height - 0.5))
        return np.asarray(np.maximum(np.maximum(over_x, over_y), 0.0), dtype=np.float32)

    def _composite(
        self, layer: ObjectLayer, t: float, z_x: Plane, z_y: Plane, below: tuple[Plane, ...]
    ) -> tuple[Plane, ...]:
        """The sample points and trusts of the frame at t with `layer` in front of `below` (the same).

        The object is at A's place moved by t times its shift: the output point z shows it if A has it at
        z - t shift, or B (registered) at z + (1 - t) shift; there both samples follow the object, each
        trusted as far as its image has the object at that point (the other may see it hidden)."""
        shift_x, shift_y = layer.shift
        object_a_x, object_a_y = z_x - t * shift_x, z_y - t * shift_y
        object_b_x, object_b_y = z_x + (1.0 - t) * shift_x, z_y + (1.0 - t) * shift_y
        in_a = _sample(layer.mask_a, *self._work_index(object_a_x, object_a_y))
        in_b = _sample(layer.mask_b, *self._work_index(object_b_x, object_b_y))
        here = np.maximum(in_a, in_b) > 0.5
        a_x, a_y, b_x, b_y, trust_a, trust_b = below
        return (
            np.where(here, object_a_x, a_x),
            np.where(here, object_a_y, a_y),
            np.where(here, object_b_x, b_x),
            np.where(here, object_b_y, b_y),
            np.where(here, _OCCLUSION_FLOOR + in_a, trust_a),
            np.where(here, _OCCLUSION_FLOOR + in_b, trust_b),
        )

    def _warp(
        self, source: npt.NDArray[np.uint8], matrix: Matrix, scale: float, size: tuple[int, int]
    ) -> npt.NDArray[np.uint8]:
        """`source` (a plane) sampled at `matrix` (output pixel -> image pixel), in the plane's pixels."""
        if scale != 1.0:
            matrix = plane_matrix(scale) @ matrix @ np.linalg.inv(plane_matrix(scale))
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        # Replicate, not a constant: a sample past the edge (weighted out anyway) is never black.
        if self._affine:
            warped = cv2.warpAffine(source, matrix[:2], size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        else:
            warped = cv2.warpPerspective(source, matrix, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        return np.asarray(warped, dtype=np.uint8)

    def _ramp_through(self, to_image: Matrix) -> Plane:
        """`_inside` at every cell of the working grid mapped by `to_image` (output pixel -> image pixel)."""
        matrix = to_image @ self._grid_to_output
        size = (self._grid_x.shape[1], self._grid_x.shape[0])
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        if self._affine:
            ramp = cv2.warpAffine(self._ramp, matrix[:2], size, flags=flags, borderMode=cv2.BORDER_CONSTANT)
        else:
            ramp = cv2.warpPerspective(self._ramp, matrix, size, flags=flags, borderMode=cv2.BORDER_CONSTANT)
        return np.asarray(ramp, dtype=np.float32)

    def _plane_maps(self, maps: Plane, scale: float, size: tuple[int, int]) -> list[Plane]:
        """The sampling maps (working grid, output pixels) at every pixel of a plane, in its pixels."""
        if scale == 1.0:
            # One plane at a time: the same values as resizing all four together, without a 4-channel
            # full-size intermediate (15 MB a frame at 720p) and the strided copies out of it.
            return [
                np.asarray(cv2.resize(channel, size, interpolation=cv2.INTER_LINEAR), dtype=np.float32)
                for channel in cv2.split(maps)
            ]
        # A chroma sample does not sit where cv2.resize would put it (left sited): sample the grid exactly
        # where it sits, then express the coordinates in the plane's pixels.
        to_output = np.linalg.inv(plane_matrix(scale))
        to_work = np.array(
            [[1 / self._step_x, 0.0, 0.5 / self._step_x - 0.5], [0.0, 1 / self._step_y, 0.5 / self._step_y - 0.5]]
        )
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        at_plane = cv2.warpAffine(maps, to_work @ to_output, size, flags=flags, borderMode=cv2.BORDER_REPLICATE)
        a_x, a_y, b_x, b_y = cv2.split(np.asarray(at_plane, dtype=np.float32))
        m = plane_matrix(scale)
        sx, ox, sy, oy = float(m[0, 0]), float(m[0, 2]), float(m[1, 1]), float(m[1, 2])
        return [
            np.asarray(a_x * sx + ox, dtype=np.float32),
            np.asarray(a_y * sy + oy, dtype=np.float32),
            np.asarray(b_x * sx + ox, dtype=np.float32),
            np.asarray(b_y * sy + oy, dtype=np.float32),
        ]

    def _work_index(self, x: Plane, y: Plane) -> tuple[Plane, Plane]:
        """Output pixel coordinates -> fractional indices into the working grid."""
        return (x + 0.5) / self._step_x - 0.5, (y + 0.5) / self._step_y - 0.5

    def _inside(self, x: Plane, y: Plane) -> Plane:
        distance = np.minimum(
            np.minimum(x + 0.5, self.width - 0.5 - x),
            np.minimum(y + 0.5, self.height - 0.5 - y),
        )
        return np.asarray(np.clip(distance / _EDGE_FADE_PX, 0.0, 1.0), dtype=np.float32)


def _apply(matrix: Matrix, x: Plane, y: Plane) -> tuple[Plane, Plane]:
    """The homography applied to every point (x, y), with the projective divide."""
    m = matrix.astype(np.float32)
    w = m[2, 0] * x + m[2, 1] * y + m[2, 2]
    return (m[0, 0] * x + m[0, 1] * y + m[0, 2]) / w, (m[1, 0] * x + m[1, 1] * y + m[1, 2]) / w


def _sample(field: npt.NDArray[np.float32], x: Plane, y: Plane) -> npt.NDArray[np.float32]:
    sampled = cv2.remap(
        field, x.astype(np.float32), y.astype(np.float32), cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
    )
    return np.asarray(sampled, dtype=np.float32)
