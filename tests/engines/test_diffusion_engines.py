"""The wan and ltx engines end to end on a CPU: tiny random-weight pipelines (diffusion_fixtures.py) saved to a
folder and loaded back by the engine with local_files_only, then the real diffusers pipeline code, our
segments, resample, progress, cancellation, out-of-memory handling and H.264 encode.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import torch

from reelgate.engines.base import Job, JobCancelled
from reelgate.engines.diffusion import DiffusionEngine, LtxEngine, WanEngine
from reelgate.engines.diffusion.pipeline_cache import PipelineCache
from reelgate.errors import TaskErrorCode, TaskFailure
from reelgate.media.framing import output_size
from reelgate.media.video import probe_video, read_frames
from tests.engines.diffusion_fixtures import (
    SHORT_SIDE,
    RecordingContext,
    counting_forwards,
    out_of_memory_in,
    save_tiny_ltx,
    save_tiny_wan,
    tiny_options,
)

Image = npt.NDArray[np.uint8]


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    root = tmp_path_factory.mktemp("weights")
    # One thread: the toy models are too small to share out, and on a busy 2-core machine OpenMP's spinning
    # threads make a run ten times slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield {
            "wan2.2": save_tiny_wan(root / "wan2.2", "wan2.2"),
            "flf2v": save_tiny_wan(root / "flf2v", "flf2v"),
            "i2v": save_tiny_wan(root / "i2v", "i2v"),
            "ltx": save_tiny_ltx(root / "ltx"),
        }
    finally:
        torch.set_num_threads(threads)


def _engine(weights: dict[str, Path], name: str, **overrides: Any) -> DiffusionEngine:
    if name == "ltx":
        options = tiny_options(weights["ltx"], **{"model_fps": 24, "max_frames": 257, **overrides})
        return LtxEngine(options, cache=PipelineCache())
    return WanEngine(tiny_options(weights[name], **overrides), cache=PipelineCache())


def _image(seed: int, height: int = 90, width: int = 160) -> Image:
    gradient = np.linspace(0, 255, width, dtype=np.float32)[None, :, None]
    noise = np.random.default_rng(seed).integers(0, 60, (height, width, 3))
    return np.asarray(np.clip(gradient + noise, 0, 255), dtype=np.uint8)


def _job(images: int = 1, aspect_ratio: str = "16:9", duration_s: int = 5, seed: int = 7) -> Job:
    return Job("task-test", [_image(1), _image(2)][:images], "a cat walks slowly", aspect_ratio, duration_s, seed)


def _pipe(engine: DiffusionEngine) -> Any:
    return engine.cache.slot("cpu").pipeline


@pytest.mark.parametrize("name", ["wan2.2", "ltx"])
@pytest.mark.parametrize("aspect_ratio", ["16:9", "9:16", "1:1"])
def test_frame_count_size_and_progress(weights: dict[str, Path], name: str, aspect_ratio: str, tmp_path: Path) -> None:
    engine = _engine(weights, name)
    ctx = RecordingContext(tmp_path)
    result = engine.run(_job(aspect_ratio=aspect_ratio), ctx, tmp_path / "out.mp4")
    video = probe_video(result.video_path)
    width, height = output_size(aspect_ratio, SHORT_SIDE)
    assert (video.width, video.height, video.frames) == (width, height, 5 * 24)
    assert (result.width, result.height, result.frames, result.fps) == (width, height, 120, 24)
    assert video.codec == "h264" and video.pix_fmt == "yuv420p"
    # Progress moves with the denoising steps, the decode and the encode, never backwards, and ends at 1.
    assert ctx.progress == sorted(ctx.progress) and ctx.progress[-1] == 1.0
    assert len({round(p, 4) for p in ctx.progress if p <= 0.81}) >= 2  # one report per denoising step
    assert result.info["segments"] == 1 and result.info["long_video"] == "single"


def test_the_engine_loads_the_saved_folder_offline_once(
    weights: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Any attempt to reach a hub fails the load: local_files_only must be all it needs.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    engine = _engine(weights, "wan2.2")
    engine.run(_job(), RecordingContext(tmp_path), tmp_path / "a.mp4")
    engine.run(_job(seed=8), RecordingContext(tmp_path), tmp_path / "b.mp4")
    slot = engine.cache.slot("cpu")
    assert slot.loads == 1  # warm: the second task reused the pipeline
    assert type(slot.pipeline).__name__ == "WanImageToVideoPipeline"
    assert slot.pipeline.transformer_2 is not None  # the saved folder's two experts came back


def test_seed_is_honoured(weights: dict[str, Path], tmp_path: Path) -> None:
    engine = _engine(weights, "ltx")

    def frames(seed: int, name: str) -> list[Image]:
        result = engine.run(_job(seed=seed), RecordingContext(tmp_path), tmp_path / name)
        return list(read_frames(result.video_path))

    same_a, same_b, other = frames(11, "a.mp4"), frames(11, "b.mp4"), frames(12, "c.mp4")
    assert all(np.array_equal(a, b) for a, b in zip(same_a, same_b, strict=True))
    assert not all(np.array_equal(a, c) for a, c in zip(same_a, other, strict=True))


@pytest.mark.parametrize("name", ["wan2.2", "flf2v", "ltx"])
def test_first_and_last_frame(weights: dict[str, Path], name: str, tmp_path: Path) -> None:
    result = _engine(weights, name).run(_job(images=2), RecordingContext(tmp_path), tmp_path / "out.mp4")
    assert result.frames == 120 and result.info["method"] == "first_last_frame"


def test_wan21_checkpoints_refuse_the_job_kind_they_cannot_do(weights: dict[str, Path], tmp_path: Path) -> None:
    with pytest.raises(TaskFailure) as raised:
        _engine(weights, "i2v").run(_job(images=2), RecordingContext(tmp_path), tmp_path / "out.mp4")
    assert raised.value.code == TaskErrorCode.SERVICE_UNAVAILABLE and "FLF2V" in raised.value.message
    with pytest.raises(TaskFailure) as raised:
        _engine(weights, "flf2v").run(_job(images=1), RecordingContext(tmp_path), tmp_path / "out.mp4")
    assert raised.value.code == TaskErrorCode.SERVICE_UNAVAILABLE
    result = _engine(weights, "i2v").run(_job(images=1), RecordingContext(tmp_path), tmp_path / "out.mp4")
    assert result.info["model"] == "wan2.1-i2v"


@pytest.mark.parametrize("name", ["wan2.2", "ltx"])
def test_ten_seconds_past_the_span_chains_segments(weights: dict[str, Path], name: str, tmp_path: Path) -> None:
    # A span of 9 frames at 4 fps (2 s): 10 s needs 41 model frames, in 5 chained segments.
    engine = _engine(weights, name, model_fps=4, max_frames=9)
    ctx = RecordingContext(tmp_path)
    result = engine.run(_job(images=2, duration_s=10), ctx, tmp_path / "out.mp4")
    assert probe_video(result.video_path).frames == 240
    assert result.info["segments"] == 5 and result.info["long_video"] == "chain"
    assert result.info["model_frames"] == 41
    assert ctx.progress == sorted(ctx.progress) and ctx.progress[-1] == 1.0


def test_stretch_plays_one_span_over_the_duration(weights: dict[str, Path], tmp_path: Path) -> None:
    engine = _engine(weights, "wan2.2", model_fps=4, max_frames=9, long_video="stretch")
    result = engine.run(_job(duration_s=10), RecordingContext(tmp_path), tmp_path / "out.mp4")
    assert result.frames == 240 and result.info["segments"] == 1 and result.info["model_frames"] == 9
    assert result.info["effective_model_fps"] == 0.8 and result.info["motion_span_s"] == 2.0


@pytest.mark.parametrize("name", ["wan2.2", "ltx"])
def test_cancellation_between_steps(weights: dict[str, Path], name: str, tmp_path: Path) -> None:
    engine = _engine(weights, name, steps=4)
    engine.run(_job(), RecordingContext(tmp_path), tmp_path / "warm.mp4")  # load outside the counted run
    pipe = _pipe(engine)
    ctx = RecordingContext(tmp_path, cancel_after_reports=1)  # cancelled once the first step reported
    with (
        counting_forwards(pipe.transformer) as steps,
        counting_forwards(pipe.vae.decoder) as decodes,
        pytest.raises(JobCancelled),
    ):
        engine.run(_job(), ctx, tmp_path / "out.mp4")
    # Classifier-free guidance: Wan runs a conditional and an unconditional pass, LTX-Video one batched pass.
    passes_per_step = 2 if name == "wan2.2" else 1
    assert len(steps) == passes_per_step  # stopped after step 1 of 4: no further step, no decode
    assert decodes == []
    assert not (tmp_path / "out.mp4").exists()
    # The GPU slot was released: the next task runs at once on the warm pipeline.
    assert engine.run(_job(), RecordingContext(tmp_path), tmp_path / "next.mp4").frames == 120
    assert engine.cache.slot("cpu").loads == 1


@pytest.mark.parametrize("name", ["wan2.2", "ltx"])
def test_out_of_memory_fails_the_task_and_the_worker_stays_healthy(
    weights: dict[str, Path], name: str, tmp_path: Path
) -> None:
    engine = _engine(weights, name)
    engine.run(_job(), RecordingContext(tmp_path), tmp_path / "warm.mp4")
    with out_of_memory_in(_pipe(engine).transformer) as calls, pytest.raises(TaskFailure) as raised:
        engine.run(_job(), RecordingContext(tmp_path), tmp_path / "oom.mp4")
    assert calls == [1]
    assert raised.value.code == TaskErrorCode.RESOURCE_EXHAUSTED and "out of memory" in raised.value.message
    assert raised.value.__context__ is None  # no traceback (and its tensors) kept alive by the failure
    assert not engine.cache.slot("cpu").lock.locked()
    result = engine.run(_job(), RecordingContext(tmp_path), tmp_path / "after.mp4")
    assert probe_video(result.video_path).frames == 120


def test_first_block_cache_runs_on_both_experts(weights: dict[str, Path], tmp_path: Path) -> None:
    engine = _engine(weights, "wan2.2", cache="first_block", cache_threshold=0.2, steps=3)
    result = engine.run(_job(), RecordingContext(tmp_path), tmp_path / "out.mp4")
    assert result.frames == 120 and result.info["cache"] == "first_block"
    pipe = _pipe(engine)
    assert pipe.transformer.is_cache_enabled and pipe.transformer_2.is_cache_enabled


def test_one_gpu_holds_one_pipeline(weights: dict[str, Path], tmp_path: Path) -> None:
    cache = PipelineCache()
    wan = WanEngine(tiny_options(weights["wan2.2"]), cache=cache)
    ltx = LtxEngine(tiny_options(weights["ltx"], model_fps=24), cache=cache)
    wan.run(_job(), RecordingContext(tmp_path), tmp_path / "a.mp4")
    ltx.run(_job(), RecordingContext(tmp_path), tmp_path / "b.mp4")
    slot = cache.slot("cpu")
    assert type(slot.pipeline).__name__ == "LTXConditionPipeline" and slot.loads == 2
    # A task that waits for a busy GPU stops waiting when it is cancelled.
    with slot.lock, pytest.raises(JobCancelled):
        wan.run(_job(), RecordingContext(tmp_path, cancel_after_reports=0), tmp_path / "c.mp4")
