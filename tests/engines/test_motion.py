"""The motion engine end to end (real encodes) and its camera/morph parts frame by frame."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest
from skimage import data

from reelgate.engines.base import Engine, Job, JobCancelled
from reelgate.engines.motion import MotionEngine
from reelgate.engines.motion.camera import camera_frames, view_at
from reelgate.engines.motion.morph import crossfade_at, morph_frames, plan_morph
from reelgate.engines.motion.vocabulary import CameraMove, camera_move_from_prompt
from reelgate.media.framing import fit_to_frame, output_size
from reelgate.media.video import probe_video, read_frames

Image = npt.NDArray[np.uint8]
SMALL = 144  # short side for most tests: 256x144 at 16:9 keeps a real encode well under a second


@dataclass
class RecordingContext:
    scratch_dir: Path
    cancel_after_reports: int | None = None
    progress: list[float] = field(default_factory=list)

    def report_progress(self, fraction: float) -> None:
        self.progress.append(fraction)

    def cancelled(self) -> bool:
        return self.cancel_after_reports is not None and len(self.progress) >= self.cancel_after_reports


def _sample_photo(name: str) -> Image:
    """A scikit-image sample photo (bundled, no download), typed for the tests."""
    return np.asarray(getattr(data, name)(), dtype=np.uint8)


def _psnr(a: Image, b: Image) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def _job(images: list[Image], prompt: str = "", aspect_ratio: str = "16:9", duration_s: int = 5) -> Job:
    return Job(task_id="task-1", images=images, prompt=prompt, aspect_ratio=aspect_ratio, duration_s=duration_s, seed=7)


def _first_and_last_frames(path: Path) -> tuple[Image, Image]:
    first: Image | None = None
    last: Image | None = None
    for frame in read_frames(path):
        if first is None:
            first = frame.copy()
        last = frame
    assert first is not None and last is not None
    return first, last.copy()


def _frame(path: Path, index: int) -> Image:
    for position, frame in enumerate(read_frames(path)):
        if position == index:
            return frame.copy()
    raise AssertionError(f"{path} has no frame {index}")


@pytest.fixture(scope="module")
def photo() -> Image:
    return _sample_photo("astronaut")


@pytest.fixture(scope="module")
def shifted_pair() -> tuple[Image, Image, Image, int]:
    """A (first), B (= A's scene moved 12 px left) and the true half-way view, all 256x144.

    Built at the output size so framing is the identity, which lets the test name the true
    in-between frame: the same crop of the photo, shifted by half the distance.
    """
    scene = np.asarray(cv2.resize(_sample_photo("astronaut"), (320, 320), interpolation=cv2.INTER_AREA), dtype=np.uint8)
    shift = 12
    top = 100

    def crop(dx: int) -> Image:
        return np.ascontiguousarray(scene[top : top + 144, 20 + dx : 20 + dx + 256])

    return crop(0), crop(shift), crop(shift // 2), shift


# --- the engine -------------------------------------------------------------------------------------


def test_is_an_always_available_engine() -> None:
    engine = MotionEngine()
    assert isinstance(engine, Engine)
    assert engine.name == "motion"
    assert engine.availability().ok
    assert 0 < engine.estimate_seconds(5) < engine.estimate_seconds(10)
    assert MotionEngine(short_side_px=360).estimate_seconds(5) < engine.estimate_seconds(5)


@pytest.mark.parametrize("aspect_ratio", ["16:9", "9:16", "1:1"])
def test_one_image_video_has_the_contracted_shape(tmp_path: Path, photo: Image, aspect_ratio: str) -> None:
    output = tmp_path / "out.mp4"
    result = MotionEngine(SMALL).run(_job([photo], "zoom in", aspect_ratio), RecordingContext(tmp_path), output)

    width, height = output_size(aspect_ratio, SMALL)
    info = probe_video(output)
    assert (info.width, info.height) == (width, height) == (result.width, result.height)
    assert info.frames == result.frames == 120
    assert info.fps == result.fps == 24
    assert (info.codec, info.pix_fmt) == ("h264", "yuv420p")
    assert info.faststart
    assert result.video_path == output
    assert result.info["method"] == "camera_move"
    first, _ = _first_and_last_frames(output)
    assert _psnr(first, fit_to_frame(photo, width, height)) > 30


def test_ten_seconds_is_240_frames(tmp_path: Path, photo: Image) -> None:
    output = tmp_path / "out.mp4"
    MotionEngine(SMALL).run(_job([photo], "pan right", duration_s=10), RecordingContext(tmp_path), output)
    assert probe_video(output).frames == 240


@pytest.mark.slow
def test_full_720p_five_seconds(tmp_path: Path, photo: Image) -> None:
    output = tmp_path / "out.mp4"
    MotionEngine(720).run(_job([photo], "slow push in"), RecordingContext(tmp_path), output)
    info = probe_video(output)
    assert (info.width, info.height, info.frames) == (1280, 720, 120)
    first, _ = _first_and_last_frames(output)
    assert _psnr(first, fit_to_frame(photo, 1280, 720)) > 30


def test_two_images_start_on_the_first_and_end_on_the_second(tmp_path: Path, photo: Image) -> None:
    second = np.ascontiguousarray(photo[30:, 40:])  # the same scene, reframed: flow explains it
    output = tmp_path / "out.mp4"
    result = MotionEngine(SMALL).run(_job([photo, second], aspect_ratio="9:16"), RecordingContext(tmp_path), output)

    width, height = output_size("9:16", SMALL)
    # A reframing is a camera move (a zoom and a shift): the camera model explains it, as a similarity.
    assert result.info["method"] == "similarity"
    assert probe_video(output).frames == 120
    first, last = _first_and_last_frames(output)
    assert _psnr(first, fit_to_frame(photo, width, height)) > 30
    assert _psnr(last, fit_to_frame(second, width, height)) > 30


def test_morph_middle_frame_follows_the_motion(tmp_path: Path, shifted_pair: tuple[Image, Image, Image, int]) -> None:
    a, b, halfway, _ = shifted_pair
    output = tmp_path / "out.mp4"
    MotionEngine(SMALL).run(_job([a, b]), RecordingContext(tmp_path), output)

    # Frame 60 of 120 sits at t = 60/119, a 6.05 px shift: within 0.05 px of the true half-way crop.
    middle = _frame(output, 60)
    along_the_flow = _psnr(middle, halfway)
    crossfaded = _psnr(crossfade_at(a, b, 60 / 119), halfway)
    assert along_the_flow > crossfaded + 6


def test_unrelated_images_fall_back_to_a_crossfade(tmp_path: Path, photo: Image) -> None:
    output = tmp_path / "out.mp4"
    result = MotionEngine(SMALL).run(_job([photo, _sample_photo("coffee")]), RecordingContext(tmp_path), output)
    assert result.info["method"] == "crossfade"
    assert probe_video(output).frames == 120


@pytest.mark.parametrize("images", ["one", "two"])
def test_progress_rises_to_exactly_one(tmp_path: Path, photo: Image, images: str) -> None:
    ctx = RecordingContext(tmp_path)
    pair = [photo] if images == "one" else [photo, np.ascontiguousarray(photo[:, ::-1])]
    MotionEngine(SMALL).run(_job(pair), ctx, tmp_path / "out.mp4")
    assert len(ctx.progress) >= 120
    assert all(later >= earlier for earlier, later in zip(ctx.progress, ctx.progress[1:], strict=False))
    assert ctx.progress[0] > 0 and ctx.progress[-1] == 1.0


@pytest.mark.parametrize(("images", "cancel_after"), [("one", 0), ("one", 30), ("two", 0), ("two", 1), ("two", 50)])
def test_cancellation_raises_and_leaves_no_file(tmp_path: Path, photo: Image, images: str, cancel_after: int) -> None:
    pair = [photo] if images == "one" else [photo, photo]
    ctx = RecordingContext(tmp_path, cancel_after_reports=cancel_after)
    output = tmp_path / "out.mp4"
    with pytest.raises(JobCancelled):
        MotionEngine(SMALL).run(_job(pair), ctx, output)
    assert not output.exists()
    assert len(ctx.progress) == cancel_after  # it stopped at the first check after the flag turned


@pytest.mark.parametrize("images", ["one", "two"])
def test_same_job_gives_identical_bytes(tmp_path: Path, photo: Image, images: str) -> None:
    pair = [photo] if images == "one" else [photo, np.ascontiguousarray(photo[20:, 10:])]
    engine = MotionEngine(SMALL)
    engine.run(_job(pair, "fast pan left"), RecordingContext(tmp_path), tmp_path / "a.mp4")
    engine.run(_job(pair, "fast pan left"), RecordingContext(tmp_path), tmp_path / "b.mp4")
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


@pytest.mark.parametrize("count", [0, 3])
def test_refuses_a_job_without_one_or_two_images(tmp_path: Path, photo: Image, count: int) -> None:
    with pytest.raises(ValueError, match="1 or 2 images"):
        MotionEngine(SMALL).run(_job([photo] * count), RecordingContext(tmp_path), tmp_path / "out.mp4")


# --- camera moves -----------------------------------------------------------------------------------


def test_speed_scales_the_zoom() -> None:
    slow, normal, fast = (
        view_at(camera_move_from_prompt(f"{speed} zoom in"), 1.0).zoom for speed in ("slow", "steady", "fast")
    )
    # Every speed zooms in (zoom above 1), and faster speeds zoom further.
    assert slow > 1.0
    assert slow < normal < fast


ALL_MOVES = [
    camera_move_from_prompt(prompt)
    for prompt in (
        "zoom in",
        "fast zoom in",
        "fast pull back",
        "fast pan left",
        "pan right",
        "fast tilt up",
        "tilt down",
        "zoom in panning right and tilting up fast",
        "fast camera rolls clockwise",
        "orbit left",
        "slow orbit right while the camera rolls counterclockwise and pans left",
        "static",
        "",
    )
]


@pytest.mark.parametrize("move", ALL_MOVES, ids=lambda move: move.label)
def test_every_path_starts_at_the_full_image_and_stays_inside_it(move: CameraMove) -> None:
    assert view_at(move, 0.0, 256, 144).is_identity
    previous = view_at(move, 0.0, 256, 144)
    for t in np.linspace(0.0, 1.0, 241)[1:]:
        view = view_at(move, float(t), 256, 144)
        assert view.zoom >= 1.0
        assert view.fits(256, 144)
        # Eased, no jumps: between two of 240 steps nothing moves by more than a few hundredths.
        assert abs(view.zoom - previous.zoom) < 0.02
        assert abs(view.offset_x - previous.offset_x) + abs(view.offset_y - previous.offset_y) < 0.005
        assert abs(view.roll - previous.roll) + abs(view.orbit - previous.orbit) < 0.005
        previous = view


@pytest.mark.parametrize("move", ALL_MOVES, ids=lambda move: move.label)
def test_camera_frames_start_exact_and_never_show_a_border(photo: Image, move: CameraMove) -> None:
    # A photo with no dark pixels: any border fill (black or otherwise dark) would show up.
    bright: Image = np.clip(photo.astype(np.int16) + 60, 60, 255).astype(np.uint8)
    frames = camera_frames(bright, move, 256, 144, 48)
    first = next(frames)
    assert np.array_equal(first, fit_to_frame(bright, 256, 144))
    last = first
    for frame in frames:
        assert frame.shape == (144, 256, 3)
        edges = np.concatenate([frame[0], frame[-1], frame[:, 0], frame[:, -1]])
        assert edges.min() >= 50
        last = frame
    moved = not np.array_equal(last, first)
    assert moved == (move.zoom not in ("static", "pull_back") or bool(move.pan or move.roll or move.orbit))


def test_zoom_in_ends_on_a_magnified_centre(photo: Image) -> None:
    move = camera_move_from_prompt("zoom in")
    peak = view_at(move, 1.0, 256, 144).zoom
    *_, last = camera_frames(photo, move, 256, 144, 24)
    framed_big = fit_to_frame(photo, round(256 * peak), round(144 * peak))
    top = (framed_big.shape[0] - 144) // 2
    left = (framed_big.shape[1] - 256) // 2
    assert _psnr(last, framed_big[top : top + 144, left : left + 256]) > 30


def test_roll_turns_the_picture_the_named_way(photo: Image) -> None:
    clockwise = view_at(camera_move_from_prompt("camera rolls clockwise"), 1.0, 256, 144)
    counter = view_at(camera_move_from_prompt("camera rolls counterclockwise"), 1.0, 256, 144)
    assert clockwise.roll > 0 > counter.roll
    assert clockwise.roll == pytest.approx(-counter.roll)
    # Turning needs a zoom to hide the corners, and gets exactly the one it needs (binary search).
    assert clockwise.zoom > 1.05


def test_orbit_makes_the_near_side_larger(photo: Image) -> None:
    """Orbiting right brings the picture's right side nearer: it shows less of the image there."""
    matrix = view_at(camera_move_from_prompt("orbit right"), 1.0, 256, 144).matrix(256, 144)

    def source_height_at(x: float) -> float:
        top = matrix @ np.array([x, 0.0, 1.0])
        bottom = matrix @ np.array([x, 143.0, 1.0])
        return float(bottom[1] / bottom[2] - top[1] / top[2])

    assert source_height_at(255.0) < source_height_at(0.0)


# --- morph --------------------------------------------------------------------------------------------


def test_morph_is_exact_at_both_ends_and_follows_the_motion(shifted_pair: tuple[Image, Image, Image, int]) -> None:
    a, b, halfway, _ = shifted_pair
    plan = plan_morph(a, b)
    assert plan.method == "similarity"
    first, middle, last = morph_frames(a, b, plan, 3)
    assert np.array_equal(first, a)
    assert np.array_equal(last, b)
    assert _psnr(middle, halfway) > _psnr(crossfade_at(a, b, 0.5), halfway) + 6
