"""Tiny random-weight Wan and LTX-Video pipelines, built in code and saved as diffusers folders.

They have the real architectures (diffusers' own classes) at toy widths, so the engines' real code runs end to
end on a CPU in about a second: the tokenizer is a small SentencePiece-style Unigram vocabulary made with the
`tokenizers` library, the text and image encoders are random transformers configs. Nothing is downloaded;
the engines load these folders back with `local_files_only=True`, like real weights.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from reelgate.engines.diffusion.engine import DiffusionOptions

WORDS = [
    "a",
    "the",
    "cat",
    "dog",
    "bird",
    "walks",
    "runs",
    "flies",
    "over",
    "under",
    "sky",
    "sea",
    "slowly",
    "camera",
    "pan",
    "zoom",
    "in",
    "out",
    "left",
    "right",
]
TEXT_WIDTH = 32
SHORT_SIDE = 32  # output 56x32 at 16:9: a whole 5 s video encodes in well under a second


def tiny_tokenizer() -> Any:
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import T5TokenizerFast

    # T5's layout: pad 0, eos 1, unk 2; word pieces carry SentencePiece's "▁" word-start mark.
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -3.0)]
    pieces += [("\u2581" + word, -1.0) for word in WORDS]
    pieces += [(letter, -5.0) for letter in "abcdefghijklmnopqrstuvwxyz"]
    backend = Tokenizer(models.Unigram(pieces, unk_id=2))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Metaspace()
    backend.decoder = decoders.Metaspace()
    backend.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return T5TokenizerFast(
        tokenizer_object=backend, eos_token="</s>", pad_token="<pad>", unk_token="<unk>", extra_ids=0
    )


def _t5_config(vocab_size: int) -> dict[str, Any]:
    return {
        "vocab_size": vocab_size,
        "d_model": TEXT_WIDTH,
        "d_kv": 8,
        "d_ff": 37,
        "num_layers": 1,
        "num_heads": 4,
        "relative_attention_num_buckets": 8,
    }


WanVariant = Literal["flf2v", "i2v", "wan2.2"]


def save_tiny_wan(path: Path, variant: WanVariant = "flf2v") -> Path:
    """A Wan image-to-video pipeline: "flf2v" (Wan2.1 first+last frame), "i2v" (Wan2.1, first frame only),
    "wan2.2" (no image encoder, two experts split at a boundary)."""
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanImageToVideoPipeline,
        WanTransformer3DModel,
    )
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel, UMT5Config, UMT5EncoderModel

    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    text_encoder = UMT5EncoderModel(UMT5Config(**_t5_config(len(tokenizer))))
    vae = AutoencoderKLWan(
        base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1, temperal_downsample=[False, True, True]
    )
    image_size = 8  # CLIP sees 8x8 patches of 1 px: 65 tokens with the class token
    with_image = variant != "wan2.2"

    def transformer() -> Any:
        return WanTransformer3DModel(
            patch_size=(1, 2, 2),
            num_attention_heads=2,
            attention_head_dim=12,
            in_channels=36,
            out_channels=16,
            text_dim=TEXT_WIDTH,
            freq_dim=256,
            ffn_dim=32,
            num_layers=2,
            cross_attn_norm=True,
            qk_norm="rms_norm_across_heads",
            rope_max_seq_len=1024,  # as the real models: long enough for 1280 px wide latents
            image_dim=4 if with_image else None,
            # FLF2V embeds the first and the last image side by side.
            pos_embed_seq_len=2 * (image_size * image_size + 1) if variant == "flf2v" else None,
        )

    components: dict[str, Any] = {
        "tokenizer": tokenizer,
        "text_encoder": text_encoder,
        "vae": vae,
        "scheduler": FlowMatchEulerDiscreteScheduler(shift=7.0),
        "transformer": transformer(),
    }
    if with_image:
        config = CLIPVisionConfig(
            hidden_size=4,
            projection_dim=4,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=image_size,
            intermediate_size=16,
            patch_size=1,
        )
        components["image_encoder"] = CLIPVisionModel(config)
        components["image_processor"] = CLIPImageProcessor(crop_size=image_size, size=image_size)
    else:
        components["transformer_2"] = transformer()
        components["boundary_ratio"] = 0.875
    WanImageToVideoPipeline(**components).save_pretrained(str(path))
    return path


def save_tiny_ltx(path: Path, real_compression: bool = False) -> Path:
    """`real_compression`: the real VAE's 32x spatial, 8x temporal compression (4x4 patches, three scaling
    stages), so a full-size video has the real model's token count (the benchmark); else 4x and 4x."""
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXConditionPipeline,
        LTXVideoTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel

    tokenizer = tiny_tokenizer()
    torch.manual_seed(0)
    transformer = LTXVideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=4,
        attention_head_dim=8,
        cross_attention_dim=32,
        num_layers=1,
        caption_channels=TEXT_WIDTH,
    )
    scaling = (True, True, True, False) if real_compression else (True, True, False, False)
    patch = 4 if real_compression else 1
    # The engine reads the compression from the pipeline, whatever it is.
    vae = AutoencoderKLLTXVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=8,
        block_out_channels=(8, 8, 8, 8),
        decoder_block_out_channels=(8, 8, 8, 8),
        layers_per_block=(1, 1, 1, 1, 1),
        decoder_layers_per_block=(1, 1, 1, 1, 1),
        spatio_temporal_scaling=scaling,
        decoder_spatio_temporal_scaling=scaling,
        decoder_inject_noise=(False, False, False, False, False),
        upsample_residual=(False, False, False, False),
        upsample_factor=(1, 1, 1, 1),
        timestep_conditioning=False,
        patch_size=patch,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    text_encoder = T5EncoderModel(T5Config(**_t5_config(len(tokenizer))))
    LTXConditionPipeline(
        transformer=transformer,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=text_encoder,
        tokenizer=tokenizer,
    ).save_pretrained(str(path))
    return path


def tiny_options(model_dir: Path, **overrides: Any) -> DiffusionOptions:
    base: dict[str, Any] = {
        "model_dir": str(model_dir),
        "steps": 2,
        "guidance": 3.0,
        "model_fps": 16,
        "max_frames": 81,
        "device": "cpu",
        "short_side_px": SHORT_SIDE,
        "dtype": "float32",
        "max_sequence_length": 16,
    }
    base.update(overrides)
    return DiffusionOptions(**base)


@dataclass
class RecordingContext:
    scratch_dir: Path
    cancel_after_reports: int | None = None
    progress: list[float] = field(default_factory=list)

    def report_progress(self, fraction: float) -> None:
        self.progress.append(fraction)

    def cancelled(self) -> bool:
        return self.cancel_after_reports is not None and len(self.progress) >= self.cancel_after_reports


@contextmanager
def out_of_memory_in(module: torch.nn.Module) -> Iterator[list[int]]:
    """Make every forward of `module` raise torch's CUDA out-of-memory error, as a full GPU does."""
    calls: list[int] = []

    def raise_oom(_module: torch.nn.Module, _inputs: Any) -> None:
        calls.append(1)
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (simulated)")

    handle = module.register_forward_pre_hook(raise_oom)
    try:
        yield calls
    finally:
        handle.remove()


@contextmanager
def counting_forwards(module: torch.nn.Module) -> Iterator[list[int]]:
    calls: list[int] = []
    handle = module.register_forward_pre_hook(lambda _m, _i: calls.append(1))
    try:
        yield calls
    finally:
        handle.remove()
