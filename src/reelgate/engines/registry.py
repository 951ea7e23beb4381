"""Which engines exist, and which engine serves a public model name (docs/design.md, Engines)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass

from reelgate.config import Settings
from reelgate.engines.base import Engine
from reelgate.engines.relay.health import RelayRuntime
from reelgate.errors import ApiError


@dataclass(frozen=True)
class Route:
    """Where a create goes: the public model, the engine that serves it, and what that engine promises."""

    model: str
    engine: str
    estimate_s: float
    # The engine's prompt cap (a relay's upstream limit); a longer prompt is refused at create.
    max_prompt_chars: int | None = None


def _motion(settings: Settings, _relays: RelayRuntime) -> Engine:
    from reelgate.engines.motion import MotionEngine
    from reelgate.engines.motion.engine import Refine

    refine: Refine = "rife" if settings.motion_refine == "rife" else "none"
    return MotionEngine(short_side_px=settings.motion_short_side_px, refine=refine)


def _wan(settings: Settings, _relays: RelayRuntime) -> Engine:
    # Imported here: the diffusion modules import torch lazily, so a base install builds them (unavailable).
    from reelgate.engines.diffusion.options import wan_options
    from reelgate.engines.diffusion.wan import WanEngine

    return WanEngine(wan_options(settings))


def _ltx(settings: Settings, _relays: RelayRuntime) -> Engine:
    from reelgate.engines.diffusion.ltx import LtxEngine
    from reelgate.engines.diffusion.options import ltx_options

    return LtxEngine(ltx_options(settings))


def _kling(settings: Settings, relays: RelayRuntime) -> Engine:
    from reelgate.engines.relay.kling import KlingRelay

    return KlingRelay(settings, relays)


def _fal(settings: Settings, relays: RelayRuntime) -> Engine:
    from reelgate.engines.relay.fal import FalRelay

    return FalRelay(settings, relays)


FACTORIES: dict[str, Callable[[Settings, RelayRuntime], Engine]] = {
    "motion": _motion,
    "wan": _wan,
    "ltx": _ltx,
    "kling": _kling,
    "fal": _fal,
}


def model_engines(settings: Settings) -> list[str]:
    """The engines REELGATE_MODELS routes to, in the order they first appear."""
    return list(dict.fromkeys(name for engines in settings.models.values() for name in engines))


def build_engines(
    settings: Settings, names: Iterable[str] | None = None, *, relays: RelayRuntime | None = None
) -> dict[str, Engine]:
    """The named engines (default: every engine REELGATE_MODELS routes to). `relays`: the service's shared
    relay state; a one-off use (the CLI) gets its own. ValueError names an unknown engine."""
    wanted = list(names) if names is not None else model_engines(settings)
    unknown = [name for name in wanted if name not in FACTORIES]
    if unknown:
        raise ValueError(f"unknown engine(s): {', '.join(unknown)}; known: {', '.join(FACTORIES)}")
    runtime = relays if relays is not None else RelayRuntime()
    return {name: FACTORIES[name](settings, runtime) for name in wanted}


class EngineRegistry:
    def __init__(self, engines: dict[str, Engine], routes: dict[str, list[str]]) -> None:
        self.engines = engines
        self.routes = routes

    def model_names(self) -> list[str]:
        return list(self.routes)

    def available_here(self) -> set[str]:
        """The engines this process can run itself (weights present, credentials set, breaker closed)."""
        return {name for name, engine in self.engines.items() if engine.availability().ok}

    def route(
        self, model: str, duration_s: int = 5, *, serving: Collection[str], allowed: list[str] | None = None
    ) -> Route:
        """The first engine of the model's route that a live worker serves (`serving`: the engines live workers
        advertise as available); unknown model = 404 naming one that exists and, given the caller's `allowed`
        models, one the caller may use. None served: 502 for a relay route (naming a model that is served), 503
        otherwise: never a task that nobody can serve."""
        candidates = self.routes.get(model)
        if candidates is None:
            usable = [name for name in self.routes if allowed is None or name in allowed]
            suggestion = usable[0] if usable else None
            raise ApiError(404, f"Specified model not found: {model!r}", param="model", fallback_suggestion=suggestion)
        for name in candidates:
            engine = self.engines.get(name)
            if engine is not None and name in serving:
                limit = getattr(engine, "max_prompt_chars", None)
                return Route(
                    model=model, engine=name, estimate_s=engine.estimate_seconds(duration_s), max_prompt_chars=limit
                )
        if any(getattr(self.engines.get(name), "provider", None) for name in candidates):
            # A relay route is out (no credentials, refused, or cooling down): name a model that is served.
            served = [
                other
                for other, engines in self.routes.items()
                if other != model and (allowed is None or other in allowed) and any(n in serving for n in engines)
            ]
            raise ApiError(
                502,
                f"Every upstream of {model!r} is unavailable right now",
                param="model",
                fallback_suggestion=served[0] if served else "retry after 60 seconds",
            )
        raise ApiError(
            503,
            f"No worker serves {model!r} right now (engines: {', '.join(candidates)})",
            param="model",
            fallback_suggestion="retry after 30 seconds",
            headers={"Retry-After": "30"},
        )
