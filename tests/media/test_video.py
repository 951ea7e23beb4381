"""VideoWriter / probe_video / read_frames against the real bundled ffmpeg."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from reelgate.media.video import VideoEncodeError, VideoProbeError, VideoWriter, probe_video, read_frames

Frame = npt.NDArray[np.uint8]


def _gradient_frame(width: int, height: int, index: int) -> Frame:
    """A smooth, moving colour ramp: easy for x264, so decoded frames stay close to the input."""
    ys, xs = np.mgrid[0:height, 0:width]
    red = xs * 200 // max(width - 1, 1) + index % 50
    green = ys * 255 // max(height - 1, 1)
    blue = np.full_like(xs, 40 + index % 100)
    return np.dstack([red, green, blue]).astype(np.uint8)


def _psnr(a: Frame, b: Frame) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def _write(path: Path, frames: list[Frame], fps: int = 24, preset: str = "veryfast") -> None:
    height, width = frames[0].shape[:2]
    with VideoWriter(path, width, height, fps, preset=preset) as writer:
        for frame in frames:
            writer.write(frame)


def test_writes_h264_yuv420p_faststart_with_exact_frame_count(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    frames = [_gradient_frame(64, 48, i) for i in range(120)]
    _write(path, frames)

    info = probe_video(path)
    assert (info.width, info.height) == (64, 48)
    assert info.frames == 120
    assert info.fps == 24.0
    assert info.codec == "h264"
    assert info.pix_fmt == "yuv420p"
    assert info.duration_s == pytest.approx(5.0, abs=0.05)
    assert info.faststart


def test_decoded_frames_match_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    frames = [_gradient_frame(96, 64, i) for i in range(30)]
    _write(path, frames)

    decoded = list(read_frames(path))
    assert len(decoded) == len(frames)
    for original, back in zip(frames, decoded, strict=True):
        assert back.shape == original.shape
        assert _psnr(original, back) > 35


def test_other_fps_is_honoured(tmp_path: Path) -> None:
    path = tmp_path / "out.mp4"
    _write(path, [_gradient_frame(32, 32, i) for i in range(30)], fps=30)
    info = probe_video(path)
    assert info.fps == 30.0
    assert info.frames == 30


def test_same_frames_give_identical_bytes(tmp_path: Path) -> None:
    frames = [_gradient_frame(64, 48, i) for i in range(24)]
    _write(tmp_path / "a.mp4", frames)
    _write(tmp_path / "b.mp4", frames)
    assert (tmp_path / "a.mp4").read_bytes() == (tmp_path / "b.mp4").read_bytes()


def test_exception_inside_the_block_kills_ffmpeg_and_removes_the_file(tmp_path: Path) -> None:
    path = tmp_path / "partial.mp4"
    writer = VideoWriter(path, 64, 48)
    with pytest.raises(KeyboardInterrupt), writer:
        for index in range(10):
            writer.write(_gradient_frame(64, 48, index))
        raise KeyboardInterrupt
    assert not path.exists()


def test_ffmpeg_failure_carries_its_stderr_and_leaves_no_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.mp4"
    with pytest.raises(VideoEncodeError, match="no-such-preset"):
        _write(path, [_gradient_frame(64, 48, i) for i in range(50)], preset="no-such-preset")
    assert not path.exists()


@pytest.mark.parametrize(("width", "height"), [(63, 48), (64, 47), (0, 48)])
def test_odd_or_empty_sizes_are_refused(tmp_path: Path, width: int, height: int) -> None:
    with pytest.raises(ValueError, match="even"):
        VideoWriter(tmp_path / "x.mp4", width, height)


def test_a_frame_of_the_wrong_shape_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.mp4"
    with pytest.raises(ValueError, match="frame must be"), VideoWriter(path, 64, 48) as writer:
        writer.write(np.zeros((48, 64, 4), dtype=np.uint8))
    assert not path.exists()


def test_probe_refuses_missing_and_non_video_files(tmp_path: Path) -> None:
    with pytest.raises(VideoProbeError):
        probe_video(tmp_path / "missing.mp4")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    with pytest.raises(VideoProbeError):
        probe_video(text)
