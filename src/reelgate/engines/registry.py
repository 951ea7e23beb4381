"""Which engines exist, and which engine serves a public model name (DESIGN.md, Engines)."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from reelgate.config import Settings
from reelgate.engines.base import Engine
from reelgate.errors import ApiError
from reelgate.tasks.service import Route


def _motion(settings: Settings) -> Engine:
    from reelgate.engines.motion import MotionEngine
    from reelgate.engines.motion.engine import Refine

    refine: Refine = "rife" if settings.motion_refine == "rife" else "none"
    return MotionEngine(short_side_px=settings.motion_short_side_px, refine=refine)


FACTORIES: dict[str, Callable[[Settings], Engine]] = {"motion": _motion}


def build_engines(settings: Settings, names: Iterable[str] | None = None) -> dict[str, Engine]:
    wanted = list(names) if names is not None else list(FACTORIES)
    unknown = [name for name in wanted if name not in FACTORIES]
    if unknown:
        raise ValueError(f"unknown engine(s): {', '.join(unknown)}; known: {', '.join(FACTORIES)}")
    return {name: FACTORIES[name](settings) for name in wanted}


class EngineRegistry:
    def __init__(self, engines: dict[str, Engine], routes: dict[str, list[str]]) -> None:
        self.engines = engines
        self.routes = routes

    def model_names(self) -> list[str]:
        return list(self.routes)

    def route(self, model: str, duration_s: int = 5) -> Route:
        """The first available engine of the model's route; unknown model = 404 naming one that exists."""
        candidates = self.routes.get(model)
        if candidates is None:
            suggestion = next(iter(self.routes), None)
            raise ApiError(404, f"Specified model not found: {model!r}", param="model", fallback_suggestion=suggestion)
        for name in candidates:
            engine = self.engines.get(name)
            if engine is not None and engine.availability().ok:
                return Route(model=model, engine=name, estimate_s=engine.estimate_seconds(duration_s))
        raise ApiError(
            503,
            f"No engine can serve {model!r} right now",
            param="model",
            fallback_suggestion="retry after 30 seconds",
            headers={"Retry-After": "30"},
        )
