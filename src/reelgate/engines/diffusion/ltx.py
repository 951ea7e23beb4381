"""LTX-Video through diffusers' `LTXConditionPipeline`, weights from a local directory.

Keyframe conditions: the first image at frame 0 and, for two-image jobs, the last image at the last frame
index. Longer than the model's span, segments are chained (sizing.py): each starts from the previous one's
last frame. The LTX-Video checkpoints in diffusers layout (LTXPipeline, LTXImageToVideoPipeline or
LTXConditionPipeline in model_index.json) share their components, so any of them loads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from reelgate.engines.base import RGBImage
from reelgate.engines.diffusion.engine import DiffusionEngine, StepCallback

NEGATIVE_PROMPT = "worst quality, inconsistent motion, blurry, jittery, distorted"
# LTX-Video's pipeline checks sizes against 32 whatever the VAE's own compression.
_GRID = 32
# Decode with a little noise at a late timestep, as LTX-Video 0.9.1+ recommends (ignored by older VAEs).
_DECODE_TIMESTEP = 0.05
_DECODE_NOISE_SCALE = 0.025


class LtxEngine(DiffusionEngine):
    name = "ltx"
    setting_prefix = "ltx"
    pipeline_class_names = ("LTXConditionPipeline", "LTXPipeline", "LTXImageToVideoPipeline")
    # LTX-Video (2B, 0.9.x) runs faster than real time on one H100 at 768x512 (published: "seconds" for a
    # clip); about 0.6 s a step at 832x480 x 81 frames is the guess until bench/gpu.py measures it.
    reference_step_s = 0.6

    def _load(self, path: Path, torch_dtype: Any) -> Any:
        from diffusers import LTXConditionPipeline

        return LTXConditionPipeline.from_pretrained(str(path), dtype=torch_dtype, local_files_only=True)

    def _grid_multiple(self, pipe: Any) -> int:
        return _GRID

    def _temporal_ratio(self, pipe: Any) -> int:
        return int(pipe.vae_temporal_compression_ratio)

    def _decoder_calls(self, pipe: Any, frames: int) -> int:
        return 1  # one decoder pass over all latent frames (no tiling)

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
        from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

        conditions = [LTXVideoCondition(image=Image.fromarray(first), frame_index=0)]
        if last is not None:
            conditions.append(LTXVideoCondition(image=Image.fromarray(last), frame_index=frames - 1))
        kwargs: dict[str, Any] = {}
        if self.options.max_sequence_length is not None:
            kwargs["max_sequence_length"] = self.options.max_sequence_length
        output = pipe(
            conditions=conditions,
            prompt=prompt,
            negative_prompt=NEGATIVE_PROMPT,
            height=height,
            width=width,
            num_frames=frames,
            frame_rate=self.options.model_fps,
            num_inference_steps=self.options.steps,
            guidance_scale=self.options.guidance,
            decode_timestep=_DECODE_TIMESTEP,
            decode_noise_scale=_DECODE_NOISE_SCALE,
            generator=generator,
            output_type="np",
            callback_on_step_end=on_step,
            **kwargs,
        )
        return np.asarray(output.frames[0])

    def _pipeline_info(self, pipe: Any, two_images: bool) -> dict[str, str | int | float | bool]:
        return {"model": "ltx-video"}
