"""DiffusionOptions from Settings, one function per engine (the registry's factories call them)."""

from __future__ import annotations

from typing import cast

from reelgate.config import Settings
from reelgate.engines.diffusion.engine import CacheKind, DiffusionOptions, Dtype
from reelgate.engines.diffusion.sizing import LongVideo


def _shared(settings: Settings) -> dict[str, object]:
    return {
        "device": settings.gpu_device,
        "short_side_px": settings.diffusion_short_side_px,
        "long_video": cast(LongVideo, settings.diffusion_long_video),
        "dtype": cast(Dtype, settings.diffusion_dtype),
        "compile": settings.diffusion_compile,
        "cache": cast(CacheKind, settings.diffusion_cache),
        "cache_threshold": settings.diffusion_cache_threshold,
    }


def wan_options(settings: Settings) -> DiffusionOptions:
    return DiffusionOptions(
        model_dir=settings.wan_model_dir,
        steps=settings.wan_steps,
        guidance=settings.wan_guidance,
        model_fps=settings.wan_fps,
        max_frames=settings.wan_max_frames,
        lora_path=settings.wan_lora_path,
        **_shared(settings),  # type: ignore[arg-type]
    )


def ltx_options(settings: Settings) -> DiffusionOptions:
    return DiffusionOptions(
        model_dir=settings.ltx_model_dir,
        steps=settings.ltx_steps,
        guidance=settings.ltx_guidance,
        model_fps=settings.ltx_fps,
        max_frames=settings.ltx_max_frames,
        lora_path=settings.ltx_lora_path,
        **_shared(settings),  # type: ignore[arg-type]
    )
