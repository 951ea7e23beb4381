"""What the Wan and LTX-Video engines share: availability, the warm pipeline, seeding, segments, progress,
cancellation between denoising steps, out-of-memory handling, and the resample to the output video.

torch and diffusers are imported only inside methods, so the base install (no `gpu` extra) can build these
engines, which then say why they are unavailable.
"""

from __future__ import annotations

import importlib.util
import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from reelgate.engines.base import (
    Availability,
    EngineResult,
    Job,
    JobCancelled,
    RGBImage,
    RunContext,
    raise_if_cancelled,
)
from reelgate.engines.diffusion.pipeline_cache import PipelineCache, release_device_memory, shared_cache
from reelgate.engines.diffusion.sizing import FramePlan, LongVideo, blend_at, generation_size, plan_frames
from reelgate.engines.diffusion.sizing import resample_positions as _positions
from reelgate.errors import TaskErrorCode, TaskFailure
from reelgate.media.framing import fit_to_frame, output_size
from reelgate.media.video import VideoWriter

Dtype = Literal["bfloat16", "float16", "float32"]
CacheKind = Literal["none", "first_block"]
FindSpec = Callable[[str], object]

INSTALL_HINT = "pip install -e '.[gpu]'"
# Shares of the progress bar within one segment (the rest of the run is the resample and encode).
_DENOISE_SHARE = 0.85
_DECODE_SHARE = 0.15
_ENCODE_SHARE = 0.05


@dataclass(frozen=True)
class DiffusionOptions:
    model_dir: str
    steps: int
    guidance: float
    model_fps: int
    max_frames: int
    device: str = "cuda"
    short_side_px: int = 480
    long_video: LongVideo = "chain"
    dtype: Dtype = "bfloat16"
    compile: bool = False
    cache: CacheKind = "none"
    cache_threshold: float = 0.05
    lora_path: str = ""
    # Text tokens given to the encoder; None = the pipeline's own default (Wan 512, LTX-Video 256).
    max_sequence_length: int | None = None


class _Interrupted(Exception):
    """Raised from the step callback to leave the denoising loop at once (no decode of a cancelled run)."""


Info = dict[str, str | int | float | bool]
StepCallback = Callable[[Any, int, Any, dict[str, Any]], dict[str, Any]]


class DiffusionEngine(ABC):
    name: str
    setting_prefix: str  # "wan" -> REELGATE_WAN_MODEL_DIR in messages
    pipeline_class_names: tuple[str, ...]
    required_modules: tuple[str, ...] = ("torch", "diffusers", "transformers", "accelerate")
    # A published figure, scaled (docs/engines/diffusion.md): seconds per denoising step for 81 frames at 832x480.
    reference_step_s: float

    def __init__(
        self, options: DiffusionOptions, cache: PipelineCache | None = None, find_spec: FindSpec | None = None
    ) -> None:
        self.options = options
        self.cache = cache or shared_cache()
        self._find_spec: FindSpec = find_spec or importlib.util.find_spec
        self._availability: Availability | None = None

    # ---- what subclasses provide -------------------------------------------------------------------------
    @abstractmethod
    def _load(self, path: Path, torch_dtype: Any) -> Any: ...

    @abstractmethod
    def _grid_multiple(self, pipe: Any) -> int: ...

    @abstractmethod
    def _temporal_ratio(self, pipe: Any) -> int: ...

    @abstractmethod
    def _decoder_calls(self, pipe: Any, frames: int) -> int:
        """How many times the VAE's decoder module runs to decode `frames` frames (for decode progress)."""

    @abstractmethod
    def _generate(
        self,
        pipe: Any,
        prompt: str,
        first: RGBImage,
        last: RGBImage | None,
        frames: int,
        width: int,
        height: int,
        generator: Any,
        on_step: StepCallback,
    ) -> npt.NDArray[np.floating[Any]]:
        """One pipeline call: `frames` x height x width x 3 floats in 0..1."""

    def _pipeline_info(self, pipe: Any, two_images: bool) -> dict[str, str | int | float | bool]:
        return {}

    # ---- availability ------------------------------------------------------------------------------------
    def availability(self) -> Availability:
        # Memoised: route() asks on every create, and the CUDA check imports torch.
        if self._availability is None:
            self._availability = self._check()
        return self._availability

    def _check(self) -> Availability:
        missing = [module for module in self.required_modules if self._find_spec(module) is None]
        if missing:
            return Availability(False, f"needs the gpu extra ({INSTALL_HINT}); missing: {', '.join(missing)}")
        variable = f"REELGATE_{self.setting_prefix.upper()}_MODEL_DIR"
        if not self.options.model_dir:
            return Availability(False, f"no weights: {variable} is not set")
        problem = pipeline_dir_problem(Path(self.options.model_dir), self.pipeline_class_names)
        if problem:
            return Availability(False, f"{variable}: {problem}")
        if self.options.lora_path:
            if not Path(self.options.lora_path).is_file():
                return Availability(False, f"LoRA file {self.options.lora_path} does not exist")
            if self._find_spec("peft") is None:
                return Availability(False, f"loading a LoRA needs peft ({INSTALL_HINT})")
        if self.options.device.startswith("cuda"):
            import torch

            if not torch.cuda.is_available():
                return Availability(False, f"no CUDA device visible (REELGATE_GPU_DEVICE={self.options.device})")
        return Availability(True)

    def estimate_seconds(self, duration_s: int) -> float:
        o = self.options
        plan = plan_frames(duration_s, o.model_fps, o.max_frames, 4, o.long_video)
        width, height = output_size("16:9", o.short_side_px)
        scale = (width * height) / (832 * 480) * plan.total_frames / 81
        return round(o.steps * self.reference_step_s * scale + 5.0, 1)

    # ---- the run -----------------------------------------------------------------------------------------
    def run(self, job: Job, ctx: RunContext, output_path: Path) -> EngineResult:
        if not 1 <= len(job.images) <= 2:
            raise ValueError(f"the {self.name} engine takes 1 or 2 images, got {len(job.images)}")
        available = self.availability()
        if not available.ok:
            message = f"engine {self.name} is unavailable: {available.reason}"
            raise TaskFailure(TaskErrorCode.SERVICE_UNAVAILABLE, message)
        import torch

        o = self.options
        out_w, out_h = output_size(job.aspect_ratio, o.short_side_px)
        outcome = "running"
        frames: list[RGBImage] = []
        info: dict[str, str | int | float | bool] = {}
        with self.cache.hold(o.device, ctx.cancelled) as slot:
            try:
                pipe = slot.pipeline_for(self._cache_key(), self._load_configured)
                frames, info = self._segments(pipe, job, ctx)
                outcome = "generated"
            except torch.OutOfMemoryError:
                outcome = "out_of_memory"
            except _Interrupted:
                outcome = "cancelled"
            if outcome != "generated":
                # Outside the except blocks: a live exception's traceback holds every tensor of the failed call.
                frames = []
                release_device_memory(o.device)
        if outcome == "cancelled":
            raise JobCancelled()
        if outcome == "out_of_memory":
            raise TaskFailure(
                TaskErrorCode.RESOURCE_EXHAUSTED,
                f"the GPU ran out of memory generating {job.duration_s} s at {o.short_side_px}p; "
                "try a shorter video or retry later",
            )
        raise_if_cancelled(ctx)
        positions = _positions(len(frames), job.frame_count)
        with VideoWriter(output_path, out_w, out_h, job.fps) as writer:
            for index, position in enumerate(positions):
                raise_if_cancelled(ctx)
                writer.write(fit_to_frame(blend_at(frames, float(position)), out_w, out_h))
                ctx.report_progress(1.0 - _ENCODE_SHARE + _ENCODE_SHARE * (index + 1) / len(positions))
        return EngineResult(
            video_path=output_path, width=out_w, height=out_h, frames=job.frame_count, fps=job.fps, info=info
        )

    def _segments(self, pipe: Any, job: Job, ctx: RunContext) -> tuple[list[RGBImage], Info]:
        import torch

        o = self.options
        gen_w, gen_h = generation_size(job.aspect_ratio, o.short_side_px, self._grid_multiple(pipe))
        plan = plan_frames(job.duration_s, o.model_fps, o.max_frames, self._temporal_ratio(pipe), o.long_video)
        first = fit_to_frame(job.images[0], gen_w, gen_h)
        last = fit_to_frame(job.images[1], gen_w, gen_h) if len(job.images) == 2 else None
        # A CPU generator gives the same noise for a seed on any device (diffusers moves the noise over).
        generator = torch.Generator(device="cpu").manual_seed(job.seed)
        frames: list[RGBImage] = []
        segments = len(plan.segment_frames)
        for index, count in enumerate(plan.segment_frames):
            raise_if_cancelled(ctx)
            base = (1.0 - _ENCODE_SHARE) * index / segments
            share = (1.0 - _ENCODE_SHARE) / segments
            start = first if index == 0 else frames[-1]
            end = last if index == segments - 1 else None
            video = self._segment(pipe, job.prompt, start, end, count, gen_w, gen_h, generator, ctx, base, share)
            produced = [np.asarray(np.clip(np.rint(f * 255.0), 0, 255), dtype=np.uint8) for f in video]
            del video
            # Later segments start on the previous segment's last frame, which is already in `frames`.
            frames.extend(produced if index == 0 else produced[1:])
        info = self._run_info(plan, gen_w, gen_h, len(frames), job)
        info.update(self._pipeline_info(pipe, len(job.images) == 2))
        return frames, info

    def _segment(
        self,
        pipe: Any,
        prompt: str,
        first: RGBImage,
        last: RGBImage | None,
        count: int,
        width: int,
        height: int,
        generator: Any,
        ctx: RunContext,
        base: float,
        share: float,
    ) -> npt.NDArray[np.floating[Any]]:
        steps = self.options.steps
        decoder_calls = max(1, self._decoder_calls(pipe, count))
        decoded = 0

        def on_step(_pipe: Any, step: int, _timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            ctx.report_progress(base + share * _DENOISE_SHARE * min(1.0, (step + 1) / steps))
            if ctx.cancelled():
                raise _Interrupted()
            return tensors

        def on_decode(_module: Any, _inputs: Any, _output: Any) -> None:
            nonlocal decoded
            decoded += 1
            ctx.report_progress(base + share * (_DENOISE_SHARE + _DECODE_SHARE * min(1.0, decoded / decoder_calls)))

        hook = pipe.vae.decoder.register_forward_hook(on_decode)
        try:
            return self._generate(pipe, prompt, first, last, count, width, height, generator, on_step)
        finally:
            hook.remove()

    def _run_info(
        self, plan: FramePlan, width: int, height: int, model_frames: int, job: Job
    ) -> dict[str, str | int | float | bool]:
        o = self.options
        span_s = (model_frames - 1) / o.model_fps
        info: dict[str, str | int | float | bool] = {
            "method": "image_to_video" if len(job.images) == 1 else "first_last_frame",
            "generation_size": f"{width}x{height}",
            "model_frames": model_frames,
            "model_fps": o.model_fps,
            "segments": len(plan.segment_frames),
            "long_video": plan.strategy,
            "steps": o.steps,
            "dtype": o.dtype,
        }
        if plan.strategy == "stretch":
            # Played over the whole duration: the motion is slower than the model made it.
            info["effective_model_fps"] = round((model_frames - 1) / job.duration_s, 2)
            info["motion_span_s"] = round(span_s, 2)
        if o.cache != "none":
            info["cache"] = o.cache
        if o.compile:
            info["compiled"] = True
        if o.lora_path:
            info["lora"] = Path(o.lora_path).name
        return info

    # ---- loading -----------------------------------------------------------------------------------------
    def _cache_key(self) -> tuple[object, ...]:
        o = self.options
        return (self.name, o.model_dir, o.dtype, o.compile, o.cache, o.cache_threshold, o.lora_path)

    def _load_configured(self) -> Any:
        import torch

        o = self.options
        dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[o.dtype]
        pipe = self._load(Path(o.model_dir), dtype)
        if o.lora_path:
            pipe.load_lora_weights(o.lora_path)
        pipe.to(o.device)
        pipe.set_progress_bar_config(disable=True)
        for transformer in _transformers(pipe):
            if o.cache == "first_block":
                from diffusers import FirstBlockCacheConfig

                transformer.enable_cache(FirstBlockCacheConfig(threshold=o.cache_threshold))
            if o.compile:
                transformer.compile()
        return pipe


def _transformers(pipe: Any) -> list[Any]:
    # Wan 2.2 A14B has two experts (high noise, low noise); both get the same speed options.
    return [m for m in (getattr(pipe, "transformer", None), getattr(pipe, "transformer_2", None)) if m is not None]


def pipeline_dir_problem(path: Path, class_names: Sequence[str]) -> str:
    """Why `path` is not a diffusers pipeline directory of one of `class_names` ("" when it is one)."""
    if not path.is_dir():
        return f"{path} is not a directory"
    index_file = path / "model_index.json"
    try:
        index = json.loads(index_file.read_text())
    except FileNotFoundError:
        return f"{path} has no model_index.json (not a diffusers pipeline directory)"
    except (OSError, ValueError) as exc:
        return f"{index_file} cannot be read: {exc}"
    if not isinstance(index, dict):
        return f"{index_file} is not a JSON object"
    class_name = index.get("_class_name")
    if class_name not in class_names:
        return f"{path} holds a {class_name} pipeline; expected {' or '.join(class_names)}"
    components = [
        name
        for name, value in index.items()
        if not name.startswith("_") and isinstance(value, list) and len(value) == 2 and value[0] is not None
    ]
    absent = [name for name in components if not (path / name).is_dir()]
    if absent:
        return f"{path} lacks the component folder(s) {', '.join(sorted(absent))}"
    return ""
