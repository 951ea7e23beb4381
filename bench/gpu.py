"""The GPU engines (wan, ltx): seconds per 5 s video at 480p and 720p, and peak GPU memory, for each engine
and speed-option combination, against the first combination (bf16, nothing else) measured in the same run.

    .venv/bin/python bench/gpu.py [--quick] [--engines wan,ltx] [--resolutions 480,720]

--quick (CPU mode): the ltx engine only. CPU mode runs 480p with one step unless --resolutions says more.

With real weights (REELGATE_WAN_MODEL_DIR / REELGATE_LTX_MODEL_DIR, diffusers folders) and a CUDA GPU, it
times `engine.run` end to end (one warm-up run loads the pipeline, then the timed run: denoising, decode,
resample, H.264 encode) for: bf16; bf16 + first-block cache; bf16 + torch.compile; and, when
REELGATE_WAN_LORA_PATH / REELGATE_LTX_LORA_PATH names a step-distilled LoRA, bf16 + LoRA at 4 steps. Steps
come from the usual settings (REELGATE_WAN_STEPS, ...).

Without them it is NOT a model benchmark: it times tiny random-weight pipelines (the test fixtures) on the CPU
at the real generation sizes, i.e. the pipeline's own overhead (text encoding, latents, scheduler, VAE decode
at full size, our resample and encode) with a toy transformer, against the motion engine on the same job, and
prints the published figures of the real models for comparison.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reelgate.config import Settings  # noqa: E402
from reelgate.engines.base import Engine, Job  # noqa: E402
from reelgate.engines.diffusion import DiffusionEngine, DiffusionOptions, LtxEngine, WanEngine  # noqa: E402
from reelgate.engines.diffusion.options import ltx_options, wan_options  # noqa: E402
from reelgate.engines.diffusion.pipeline_cache import PipelineCache  # noqa: E402
from reelgate.engines.motion import MotionEngine  # noqa: E402
from reelgate.media.framing import output_size  # noqa: E402

PUBLISHED = (
    "published reference figures (not measured here):\n"
    "  Wan2.2-I2V-A14B, one H100, 480p, 5 s (81 frames, 40 steps): 328 s\n"
    "  LTX-Video distilled (0.9.x), one H100, 768x512, 5 s: a few seconds (faster than real time)"
)


class _Context:
    def __init__(self, scratch: Path) -> None:
        self.scratch_dir = scratch
        self.fraction = 0.0

    def report_progress(self, fraction: float) -> None:
        self.fraction = fraction

    def cancelled(self) -> bool:
        return False


def _job() -> Job:
    rng = np.random.default_rng(0)
    gradient = np.linspace(0, 255, 1280, dtype=np.float32)[None, :, None]
    image = np.asarray(np.clip(gradient + rng.integers(0, 40, (720, 1280, 3)), 0, 255), dtype=np.uint8)
    return Job("bench", [image], "a cat walks slowly over the grass, slow push in", "16:9", 5, 1)


def _timed(engine: Engine, scratch: Path, warm_up: bool) -> tuple[float, float]:
    """Seconds of one run (after an untimed warm-up when asked) and peak GPU memory in GiB (nan on CPU)."""
    job = _job()
    if warm_up:
        engine.run(job, _Context(scratch), scratch / "warm.mp4")
    cuda = _cuda()
    if cuda:
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    engine.run(job, _Context(scratch), scratch / "out.mp4")
    seconds = time.perf_counter() - started
    peak = float("nan")
    if cuda:
        import torch

        peak = torch.cuda.max_memory_allocated() / 2**30
    return seconds, peak


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


def _combinations(base: DiffusionOptions, lora_env: str) -> list[tuple[str, DiffusionOptions]]:
    combos = [
        ("bf16", replace(base, dtype="bfloat16", cache="none", compile=False, lora_path="")),
        ("bf16+first_block", replace(base, dtype="bfloat16", cache="first_block", compile=False, lora_path="")),
        ("bf16+compile", replace(base, dtype="bfloat16", cache="none", compile=True, lora_path="")),
    ]
    lora = os.environ.get(lora_env, "")
    if lora:
        combos.append(("bf16+lora 4 steps", replace(base, dtype="bfloat16", lora_path=lora, steps=4, guidance=1.0)))
    return combos


def gpu_bench(engines: list[str], resolutions: list[int]) -> None:
    settings = Settings()
    builders: dict[str, tuple[Callable[[DiffusionOptions], DiffusionEngine], DiffusionOptions, str]] = {
        "wan": (lambda o: WanEngine(o, cache=PipelineCache()), wan_options(settings), "REELGATE_WAN_LORA_PATH"),
        "ltx": (lambda o: LtxEngine(o, cache=PipelineCache()), ltx_options(settings), "REELGATE_LTX_LORA_PATH"),
    }
    print(f"gpu bench: {_device_name()}, 5 s videos, one warm-up run then one timed run each")
    print(f"{'engine':6} {'options':20} {'res':>5} {'s/video':>9} {'peak GiB':>9} {'vs bf16':>8}")
    for name in engines:
        build, base, lora_env = builders[name]
        if not base.model_dir:
            print(f"{name:6} skipped: REELGATE_{name.upper()}_MODEL_DIR is not set")
            continue
        for short in resolutions:
            baseline: float | None = None
            for label, options in _combinations(replace(base, short_side_px=short, device="cuda"), lora_env):
                engine = build(options)
                available = engine.availability()
                if not available.ok:
                    print(f"{name:6} {label:20} unavailable: {available.reason}")
                    continue
                with tempfile.TemporaryDirectory() as scratch:
                    seconds, peak = _timed(engine, Path(scratch), warm_up=True)
                engine.cache.slot("cuda").drop()
                baseline = baseline or seconds
                print(f"{name:6} {label:20} {short:>4}p {seconds:9.1f} {peak:9.1f} {baseline / seconds:7.2f}x")
    print(PUBLISHED)


def cpu_overhead_bench(engines: list[str], resolutions: list[int]) -> None:
    import torch
    from tests.engines.diffusion_fixtures import save_tiny_ltx, save_tiny_wan, tiny_options

    print("NOT A MODEL BENCHMARK: no GPU and/or no weights here. Tiny random-weight pipelines on the CPU at the")
    print("real generation sizes measure the pipeline's own overhead (text encoder, latents, scheduler, full-size")
    print("VAE decode, resample, H.264 encode) with a toy transformer; a real model's time is its transformer.")
    print(f"cpu: {os.cpu_count()} cores, torch {torch.__version__}, {torch.get_num_threads()} threads")
    steps = 1
    with tempfile.TemporaryDirectory() as root_name:
        root = Path(root_name)
        motion_s: dict[int, float] = {}
        for short in resolutions:
            motion_s[short], _ = _timed(MotionEngine(short_side_px=short), root, warm_up=False)
            print(f"baseline motion engine {short}p 5 s: {motion_s[short]:.1f} s")
        for name in engines:
            if name == "wan":
                folder = save_tiny_wan(root / "wan", "wan2.2")
            else:
                folder = save_tiny_ltx(root / "ltx", real_compression=True)
            fps, frames = (16, 81) if name == "wan" else (24, 257)
            for short in resolutions:
                options = tiny_options(folder, steps=steps, model_fps=fps, max_frames=frames, short_side_px=short)
                engine: DiffusionEngine = WanEngine(options) if name == "wan" else LtxEngine(options)
                seconds, _ = _timed(engine, root, warm_up=False)
                width, height = output_size("16:9", short)
                print(
                    f"tiny {name} {short}p ({width}x{height} out, {frames if name == 'wan' else 121} model frames, "
                    f"{steps} step(s)): {seconds:.1f} s = {seconds / motion_s[short]:.1f}x the motion engine"
                )
                engine.cache.slot("cpu").drop()
    print(PUBLISHED)


def _device_name() -> str:
    import torch

    return str(torch.cuda.get_device_name(0))


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="CPU mode: the ltx engine only")
    parser.add_argument("--engines", default="wan,ltx")
    parser.add_argument("--resolutions", default="", help="default: 480,720 on a GPU, 480 on the CPU")
    args = parser.parse_args()
    engines = [name.strip() for name in args.engines.split(",") if name.strip()]
    chosen = [int(value) for value in args.resolutions.split(",") if value.strip()]
    settings = Settings()
    has_weights = bool(settings.wan_model_dir or settings.ltx_model_dir)
    if _cuda() and has_weights:
        gpu_bench(engines, chosen or [480, 720])
    else:
        # On a CPU a tiny model's full-size VAE decode alone takes a minute or more: 480p, one step by default.
        cpu_overhead_bench(["ltx"] if args.quick else engines, chosen or [480])


if __name__ == "__main__":
    main()
