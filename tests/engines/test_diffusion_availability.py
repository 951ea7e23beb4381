"""When the GPU engines can run, and how they say why not: no torch needed for most of this."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reelgate.cli import app
from reelgate.config import Settings
from reelgate.engines.diffusion import LtxEngine, WanEngine
from reelgate.engines.diffusion.engine import DiffusionOptions
from reelgate.engines.registry import EngineRegistry, build_engines
from tests.conftest import settings_env


def _options(model_dir: str, **overrides: object) -> DiffusionOptions:
    values: dict[str, object] = {"model_dir": model_dir, "steps": 2, "guidance": 1.0, "model_fps": 16, "max_frames": 81}
    values["device"] = "cpu"
    values.update(overrides)
    return DiffusionOptions(**values)  # type: ignore[arg-type]


def _pipeline_dir(path: Path, class_name: str, components: tuple[str, ...] = ("vae", "transformer")) -> Path:
    path.mkdir(parents=True)
    index = {"_class_name": class_name, "_diffusers_version": "0.42.1"}
    for name in components:
        index[name] = ["diffusers", "Whatever"]  # type: ignore[assignment]
        (path / name).mkdir()
    (path / "model_index.json").write_text(json.dumps(index))
    return path


def test_unset_and_missing_directories_are_named(tmp_path: Path) -> None:
    reason = WanEngine(_options("")).availability()
    assert not reason.ok and "REELGATE_WAN_MODEL_DIR is not set" in reason.reason
    missing = LtxEngine(_options(str(tmp_path / "nowhere"))).availability()
    assert not missing.ok and "REELGATE_LTX_MODEL_DIR" in missing.reason and "is not a directory" in missing.reason


def test_invalid_directories_say_what_is_wrong(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    assert "no model_index.json" in WanEngine(_options(str(tmp_path / "empty"))).availability().reason
    wrong = _pipeline_dir(tmp_path / "ltx-weights", "LTXPipeline")
    reason = WanEngine(_options(str(wrong))).availability().reason
    assert "holds a LTXPipeline pipeline; expected WanImageToVideoPipeline" in reason
    # The LTX family shares its components, so an LTXPipeline folder serves the ltx engine.
    assert LtxEngine(_options(str(wrong))).availability().ok
    broken = _pipeline_dir(tmp_path / "partial", "WanImageToVideoPipeline")
    (broken / "vae").rmdir()
    assert "lacks the component folder(s) vae" in WanEngine(_options(str(broken))).availability().reason


def test_missing_packages_point_at_the_gpu_extra(tmp_path: Path) -> None:
    weights = _pipeline_dir(tmp_path / "wan", "WanImageToVideoPipeline")
    engine = WanEngine(
        _options(str(weights)), find_spec=lambda name: None if name in ("torch", "diffusers") else object()
    )
    reason = engine.availability().reason
    assert "pip install -e '.[gpu]'" in reason and "missing: torch, diffusers" in reason


def test_a_lora_that_is_not_there_and_a_gpu_that_is_not_there(tmp_path: Path) -> None:
    weights = _pipeline_dir(tmp_path / "wan", "WanImageToVideoPipeline")
    lora = WanEngine(_options(str(weights), lora_path=str(tmp_path / "lightx2v.safetensors"))).availability()
    assert not lora.ok and "LoRA file" in lora.reason
    import torch

    cuda = WanEngine(_options(str(weights), device="cuda")).availability()
    assert cuda.ok == torch.cuda.is_available()
    if not cuda.ok:
        assert "no CUDA device visible (REELGATE_GPU_DEVICE=cuda)" in cuda.reason


def test_engines_list_shows_why(tmp_path: Path) -> None:
    env = {**settings_env(Settings(home=tmp_path)), "REELGATE_LTX_MODEL_DIR": str(tmp_path / "missing-ltx")}
    result = CliRunner().invoke(app, ["engines", "list"], env=env)
    assert result.exit_code == 0, result.output
    # The table wraps its cells at the terminal's width; the words are there, maybe on several lines.
    words = result.output.split()
    assert "REELGATE_WAN_MODEL_DIR" in words and "weights:" in words
    assert "REELGATE_LTX_MODEL_DIR:" in words and "directory" in words


def test_routing_falls_back_to_motion_only_when_configured(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    engines = build_engines(settings, ["wan", "ltx", "motion"])
    registry = EngineRegistry(engines, {"with-fallback": ["wan", "motion"], "gpu-only": ["ltx"]})
    # wan has no weights here: the fallback serves, and the route says so (task_info.engine = "motion").
    serving = registry.available_here()  # as a worker of this machine advertises them
    assert registry.route("with-fallback", serving=serving).engine == "motion"
    from reelgate.errors import ApiError

    with pytest.raises(ApiError) as raised:
        registry.route("gpu-only", serving=serving)
    assert raised.value.status == 503


def test_the_diffusion_modules_do_not_import_torch() -> None:
    # The base install has no torch: the registry's factories must build these engines without it.
    code = (
        "import sys; from reelgate.config import Settings; from reelgate.engines.registry import build_engines; "
        "engines = build_engines(Settings(), ['wan', 'ltx']); "
        "assert not engines['wan'].availability().ok; assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
