"""Units of the relay plumbing: the circuit breaker, the cached Kling JWT, can_cancel, and the route rules."""

from __future__ import annotations

from pathlib import Path

import jwt
import pytest

from reelgate.config import Settings
from reelgate.engines.registry import EngineRegistry, Route, build_engines
from reelgate.engines.relay.base import upstream_cancellable
from reelgate.engines.relay.health import CircuitBreaker, RelayRuntime
from reelgate.engines.relay.jwt import REFRESH_MARGIN_S, TOKEN_LIFETIME_S, KlingToken
from reelgate.engines.relay.kling import classify_failure
from reelgate.errors import ApiError, TaskErrorCode


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_breaker_opens_after_failures_in_a_row_and_half_opens_after_cooldown() -> None:
    clock = Clock()
    breaker = CircuitBreaker(failures_to_open=3, cooldown_s=60, clock=clock)
    breaker.record_failure()
    breaker.record_failure()
    breaker.record_success()  # the count is of failures in a row
    breaker.record_failure()
    breaker.record_failure()
    assert not breaker.is_open()
    breaker.record_failure()
    assert breaker.is_open()
    clock.now += 61
    assert not breaker.is_open()  # half-open: one call may try
    breaker.record_failure()
    assert breaker.is_open()  # and its failure opens it again at once
    clock.now += 61
    breaker.record_success()
    breaker.record_failure()
    assert not breaker.is_open()


def test_kling_token_claims_and_refresh_before_expiry() -> None:
    clock = Clock()
    secret = "s" * 40
    token = KlingToken("access", secret, clock=clock)
    first = token.current()
    claims = jwt.decode(first, secret, algorithms=["HS256"], options={"verify_exp": False, "verify_nbf": False})
    assert claims == {"iss": "access", "exp": int(clock.now) + 1800, "nbf": int(clock.now) - 5}
    assert jwt.get_unverified_header(first) == {"alg": "HS256", "typ": "JWT"}
    clock.now += TOKEN_LIFETIME_S - REFRESH_MARGIN_S - 1
    assert token.current() == first  # cached
    clock.now += 2
    assert token.current() != first  # re-issued before it could lapse in flight
    assert token.authorization().startswith("Bearer ")


@pytest.mark.parametrize(
    ("provider", "state", "expected"),
    [
        (None, None, True),
        ("kling", None, True),
        ("kling", "submitting", False),
        ("kling", "queued", False),
        ("fal", "submitting", False),
        ("fal", "queued", True),
        ("fal", "running", False),
        ("fal", "done", False),
    ],
)
def test_can_cancel_only_while_cancel_stops_the_work(provider: str | None, state: str | None, expected: bool) -> None:
    assert upstream_cancellable(provider, state) is expected


def test_failure_messages_are_classified() -> None:
    assert classify_failure("Failure to pass the risk control system") == TaskErrorCode.CONTENT_POLICY_VIOLATION
    assert classify_failure("image contains sensitive content") == TaskErrorCode.CONTENT_POLICY_VIOLATION
    assert classify_failure("timeout in renderer") == TaskErrorCode.GENERATION_FAILED_NO_CONTENT


def _route(registry: EngineRegistry, model: str = "o1") -> Route:
    """Route as a worker of this machine would advertise: the engines available in this process."""
    return registry.route(model, serving=registry.available_here())


def _registry(tmp_path: Path, relays: RelayRuntime | None = None, **overrides: object) -> EngineRegistry:
    settings = Settings(home=tmp_path, **overrides)  # type: ignore[arg-type]
    return EngineRegistry(build_engines(settings, ["motion", "kling", "fal"], relays=relays), settings.models)


def test_route_skips_relays_without_credentials(tmp_path: Path) -> None:
    models = {"o1": ["kling", "fal", "motion"]}
    assert _route(_registry(tmp_path, models=models)).engine == "motion"
    assert _route(_registry(tmp_path, models=models, fal_key="k")).engine == "fal"
    route = _route(_registry(tmp_path, models=models, kling_access_key="a", kling_secret_key="s"))
    assert route.engine == "kling" and route.max_prompt_chars == 2500


def test_every_relay_out_is_502_naming_an_available_model(tmp_path: Path) -> None:
    registry = _registry(tmp_path, models={"o1": ["kling", "fal"], "local": ["motion"]})
    with pytest.raises(ApiError) as raised:
        _route(registry)
    assert raised.value.status == 502 and raised.value.error_type == "upstream_error"
    assert raised.value.fallback_suggestion == "local"


def test_open_breaker_takes_the_route_out(tmp_path: Path) -> None:
    registry = _registry(
        tmp_path,
        models={"o1": ["kling", "motion"]},
        kling_access_key="a",
        kling_secret_key="s",
        relay_breaker_failures=2,
    )
    kling = registry.engines["kling"]
    assert _route(registry).engine == "kling"
    health = kling.health  # type: ignore[attr-defined]
    health.record_failure()
    health.record_failure()
    assert not kling.availability().ok and "cooling down" in kling.availability().reason
    assert _route(registry).engine == "motion"


def test_route_health_is_shared_within_a_service_and_never_across_services(tmp_path: Path) -> None:
    """No module-level state: engines built on one RelayRuntime (one service) share a credential's breaker;
    another service in the same process starts healthy."""
    kling = {"models": {"o1": ["kling", "motion"]}, "kling_access_key": "a", "kling_secret_key": "s"}
    shared = RelayRuntime()
    first = _registry(tmp_path, shared, relay_breaker_failures=1, **kling)
    second_of_same_service = _registry(tmp_path, shared, relay_breaker_failures=1, **kling)
    other_service = _registry(tmp_path, relay_breaker_failures=1, **kling)
    first.engines["kling"].health.record_failure()  # type: ignore[attr-defined]
    assert _route(second_of_same_service).engine == "motion"
    assert _route(other_service).engine == "kling"
