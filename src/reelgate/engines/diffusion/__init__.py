"""Open image-to-video models on GPU workers through diffusers: Wan 2.x (`wan`) and LTX-Video (`ltx`).

Needs the optional `gpu` extra (torch, diffusers, transformers); without it, or without weights, the engines
build and report themselves unavailable with the reason (docs/engines/diffusion.md).
"""

from reelgate.engines.diffusion.engine import DiffusionEngine, DiffusionOptions
from reelgate.engines.diffusion.ltx import LtxEngine
from reelgate.engines.diffusion.wan import WanEngine

__all__ = ["DiffusionEngine", "DiffusionOptions", "LtxEngine", "WanEngine"]
