"""Wan 2.1 / 2.2 image-to-video through diffusers' `WanImageToVideoPipeline`, weights from a local directory.

Any checkpoint in diffusers layout works: Wan2.1-I2V (480P/720P), Wan2.1-FLF2V (first and last frame) and
Wan2.2-I2V-A14B (two experts, `transformer_2`). Two-image jobs pass the second image as `last_image`. Wan 2.2
takes one image or two. Wan2.1's image embedding takes exactly one image (I2V) or exactly two (FLF2V), so with
those a job of the other kind fails with `service_unavailable`, saying which checkpoint serves it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from reelgate.engines.base import RGBImage
from reelgate.engines.diffusion.engine import DiffusionEngine, StepCallback
from reelgate.errors import TaskErrorCode, TaskFailure

NEGATIVE_PROMPT = (
    "blurry, low quality, worst quality, jpeg artifacts, static, frozen frame, distorted, deformed, "
    "extra limbs, watermark, subtitles, text"
)


class WanEngine(DiffusionEngine):
    name = "wan"
    setting_prefix = "wan"
    pipeline_class_names = ("WanImageToVideoPipeline",)
    # Wan's prompt cleaning calls ftfy unconditionally.
    required_modules = ("torch", "diffusers", "transformers", "accelerate", "ftfy")
    # Wan2.2-I2V-A14B on one H100: 328 s for 81 frames at 480p with 40 steps (published), about 8.2 s a step.
    reference_step_s = 8.2

    def _load(self, path: Path, torch_dtype: Any) -> Any:
        import torch
        from diffusers import WanImageToVideoPipeline

        # The VAE and the CLIP image encoder stay in float32, as Wan's own examples run them: they are a small
        # share of the time, and the VAE in bf16 shows banding.
        dtypes = {"default": torch_dtype, "vae": torch.float32, "image_encoder": torch.float32}
        return WanImageToVideoPipeline.from_pretrained(str(path), dtype=dtypes, local_files_only=True)

    def _grid_multiple(self, pipe: Any) -> int:
        transformer = pipe.transformer if pipe.transformer is not None else pipe.transformer_2
        patch = transformer.config.patch_size
        return int(pipe.vae_scale_factor_spatial) * int(max(patch[1], patch[2]))

    def _temporal_ratio(self, pipe: Any) -> int:
        return int(pipe.vae_scale_factor_temporal)

    def _decoder_calls(self, pipe: Any, frames: int) -> int:
        # The Wan VAE decodes causally, one latent frame per decoder call.
        return (frames - 1) // self._temporal_ratio(pipe) + 1

    def _variant(self, pipe: Any) -> str:
        transformer = pipe.transformer if pipe.transformer is not None else pipe.transformer_2
        if transformer.config.image_dim is None:
            return "wan2.2"  # no image embedding: the frames condition the latents only; takes one or two
        if transformer.config.pos_embed_seq_len is not None:
            return "wan2.1-flf2v"  # embeds exactly two images: first and last
        return "wan2.1-i2v"  # embeds exactly one image

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
        variant = self._variant(pipe)
        if last is not None and variant == "wan2.1-i2v":
            raise TaskFailure(
                TaskErrorCode.SERVICE_UNAVAILABLE,
                "this server's Wan checkpoint (Wan2.1 I2V) takes a first frame only; first and last frame need "
                "the Wan2.1 FLF2V or a Wan 2.2 checkpoint",
            )
        if last is None and variant == "wan2.1-flf2v":
            raise TaskFailure(
                TaskErrorCode.SERVICE_UNAVAILABLE,
                "this server's Wan checkpoint (Wan2.1 FLF2V) needs a first and a last frame; one image needs the "
                "Wan2.1 I2V or a Wan 2.2 checkpoint",
            )
        kwargs: dict[str, Any] = {}
        if self.options.max_sequence_length is not None:
            kwargs["max_sequence_length"] = self.options.max_sequence_length
        output = pipe(
            image=Image.fromarray(first),
            last_image=Image.fromarray(last) if last is not None else None,
            prompt=prompt,
            negative_prompt=NEGATIVE_PROMPT,
            height=height,
            width=width,
            num_frames=frames,
            num_inference_steps=self.options.steps,
            guidance_scale=self.options.guidance,
            generator=generator,
            output_type="np",
            callback_on_step_end=on_step,
            **kwargs,
        )
        return np.asarray(output.frames[0])

    def _pipeline_info(self, pipe: Any, two_images: bool) -> dict[str, str | int | float | bool]:
        variant = self._variant(pipe)
        if variant == "wan2.2" and getattr(pipe, "transformer_2", None) is not None:
            variant = "wan2.2-a14b"  # two experts, high and low noise
        return {"model": variant}
