"""Idempotency, permissions, pricing, limits, the account view and the admin API, through the HTTP API on a
real database."""

from __future__ import annotations

import asyncio
import os
import secrets
import time
from pathlib import Path

import httpx
import pytest

from reelgate.accounts import idempotency
from reelgate.accounts.limits import MemoryLimiter, RedisLimiter
from reelgate.accounts.repository import KeyLimits
from reelgate.app import create_app
from reelgate.config import DEFAULT_MODEL, Settings
from reelgate.db.models import IdempotencyKey
from reelgate.tasks.schemas import CreateVideoRequest
from tests.accounts.harness import create_body, harness
from tests.conftest import (
    REDIS_URL,
    Backend,
    auth,
    make_settings,
    migrate_db,
    require_redis,
    settings_env,
)
from tests.e2e.processes import Processes, start_api_processes

OTHER_MODEL = "other-model"
ADMIN_TOKEN = secrets.token_urlsafe(32)


def _settings(tmp_path: Path, backend: Backend, **overrides: object) -> Settings:
    settings = make_settings(
        tmp_path / "home", backend, models={DEFAULT_MODEL: ["motion"], OTHER_MODEL: ["motion"]}, **overrides
    )
    migrate_db(settings)
    return settings


def test_idempotency_replay_conflict_in_progress_and_expiry(tmp_path: Path, sqlite_backend: Backend) -> None:
    with harness(_settings(tmp_path, sqlite_backend)) as h:
        key, account_id = h.new_key(credits=20)
        headers = {**auth(key), "Idempotency-Key": "order-1"}
        first = h.client.post("/v1/videos/generations", json=create_body(), headers=headers)
        assert first.status_code == 200, first.text
        again = h.client.post("/v1/videos/generations", json=create_body(), headers=headers)
        assert again.status_code == 200 and again.json() == first.json()
        assert again.headers["Idempotent-Replayed"] == "true"
        assert h.account(account_id).held_millicredits == 5000  # reserved once
        other = h.client.post("/v1/videos/generations", json=create_body(duration=10), headers=headers)
        assert other.status_code == 422
        assert other.json()["error"] == {
            "code": 422,
            "message": other.json()["error"]["message"],
            "type": "invalid_request_error",
            "param": "Idempotency-Key",
        }
        key_id = key.split("_")[1]

        same_body = idempotency.fingerprint(CreateVideoRequest(**create_body()).model_dump(mode="json"))

        # A claim left by a request that is still running (or died): 409 until its lock runs out.
        async def hold() -> None:
            assert await idempotency.claim(h.resources.db, key_id, "order-2", same_body) is None

        h.call(hold)
        busy = h.client.post(
            "/v1/videos/generations", json=create_body(), headers={**auth(key), "Idempotency-Key": "order-2"}
        )
        assert busy.status_code == 409 and busy.json()["error"]["type"] == "invalid_request_error"

        async def expire_all() -> None:
            async with h.resources.db.transaction() as session:
                await session.execute(IdempotencyKey.__table__.update().values(expires_at=time.time() - 1))

        h.call(expire_all)
        fresh = h.client.post("/v1/videos/generations", json=create_body(), headers=headers)
        assert fresh.status_code == 200 and fresh.json()["id"] != first.json()["id"]
        assert h.audit().ok


def test_failed_create_frees_the_idempotency_key(tmp_path: Path, sqlite_backend: Backend) -> None:
    with harness(_settings(tmp_path, sqlite_backend)) as h:
        key, account_id = h.new_key(credits=0)
        headers = {**auth(key), "Idempotency-Key": "retry-me"}
        assert h.client.post("/v1/videos/generations", json=create_body(), headers=headers).status_code == 402

        async def grant() -> None:
            from reelgate.accounts import service

            async with h.resources.db.transaction() as session:
                await service.grant(session, account_id, 5000, note="top-up")

        h.call(grant)
        assert h.client.post("/v1/videos/generations", json=create_body(), headers=headers).status_code == 200
        bad = h.client.post(
            "/v1/videos/generations", json=create_body(), headers={**auth(key), "Idempotency-Key": "has space"}
        )
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "Idempotency-Key"


def test_model_permissions_and_fallback_suggestion(tmp_path: Path, sqlite_backend: Backend) -> None:
    with harness(_settings(tmp_path, sqlite_backend)) as h:
        key, _ = h.new_key(credits=100, limits=KeyLimits(allowed_models=[OTHER_MODEL]))
        denied = h.client.post("/v1/videos/generations", json=create_body(), headers=auth(key))
        assert denied.status_code == 403
        assert denied.json()["error"]["type"] == "permission_error" and denied.json()["error"]["param"] == "model"
        unknown = h.client.post("/v1/videos/generations", json=create_body(model="nope"), headers=auth(key))
        assert unknown.status_code == 404 and unknown.json()["error"]["fallback_suggestion"] == OTHER_MODEL
        ok = h.client.post("/v1/videos/generations", json=create_body(model=OTHER_MODEL), headers=auth(key))
        assert ok.status_code == 200, ok.text
        account = h.client.get("/v1/account", headers=auth(key)).json()
        assert account["key"]["allowed_models"] == [OTHER_MODEL]
        assert (account["balance"], account["held"], account["available"]) == (100, 5, 95)
        assert account["user_group"] == "default"


def test_expired_key_is_a_401(tmp_path: Path, sqlite_backend: Backend) -> None:
    with harness(_settings(tmp_path, sqlite_backend)) as h:
        key, _ = h.new_key(credits=10, limits=KeyLimits(expires_at=time.time() - 1))
        response = h.client.get("/v1/account", headers=auth(key))
        assert response.status_code == 401 and "X-RateLimit-Limit" not in response.headers


def test_pricing_file_rules_multiplier_and_hot_reload(tmp_path: Path, sqlite_backend: Backend) -> None:
    pricing = tmp_path / "pricing.toml"
    pricing.write_text(
        f'[default]\nbilling_rule = "per_second"\nprice = 2\n\n[models."{OTHER_MODEL}"]\n'
        'billing_rule = "per_call"\nprice = 3\n\n[groups.vip]\nmultiplier = 0.5\n'
    )
    with harness(_settings(tmp_path, sqlite_backend, pricing_file=pricing)) as h:
        key, _ = h.new_key(credits=100, user_group="vip")
        usage = [
            h.client.post("/v1/videos/generations", json=create_body(duration, model=model), headers=auth(key)).json()[
                "usage"
            ]
            for model, duration in ((DEFAULT_MODEL, 5), (DEFAULT_MODEL, 10), (OTHER_MODEL, 10))
        ]
        assert usage == [
            {"billing_rule": "per_second", "credits_reserved": 5, "user_group": "vip"},
            {"billing_rule": "per_second", "credits_reserved": 10, "user_group": "vip"},
            {"billing_rule": "per_call", "credits_reserved": 1.5, "user_group": "vip"},
        ]
        pricing.write_text('[default]\nbilling_rule = "per_call"\nprice = 7\n')
        os.utime(pricing, (time.time() + 5, time.time() + 5))
        reloaded = h.client.post("/v1/videos/generations", json=create_body(10), headers=auth(key)).json()["usage"]
        assert reloaded == {"billing_rule": "per_call", "credits_reserved": 7, "user_group": "vip"}
        pricing.write_text("[default]\nprice = 'free'\n")  # broken: the previous table stays in force
        os.utime(pricing, (time.time() + 10, time.time() + 10))
        kept = h.client.post("/v1/videos/generations", json=create_body(5), headers=auth(key)).json()["usage"]
        assert kept["credits_reserved"] == 7
        assert h.audit().ok


def test_rate_limit_headers_rpm_and_concurrency(tmp_path: Path, sqlite_backend: Backend) -> None:
    with harness(_settings(tmp_path, sqlite_backend)) as h:
        key, _ = h.new_key(credits=100, limits=KeyLimits(rpm_limit=4, max_concurrent=2, read_rpm_limit=2))
        writes = [
            h.client.post("/v1/videos/generations", json=create_body(), headers=auth(key)),
            h.client.post("/v1/videos/generations", json=create_body(), headers=auth(key)),
            h.client.post("/v1/videos/generations", json=create_body(), headers=auth(key)),
            h.client.post("/v1/tasks/task-unified-1-nothere0/cancel", headers=auth(key)),
            h.client.post("/v1/videos/generations", json=create_body(), headers=auth(key)),
        ]
        assert [a.status_code for a in writes] == [200, 200, 429, 404, 429]
        assert writes[2].json()["error"]["type"] == "rate_limit_error" and "Retry-After" in writes[2].headers
        assert [a.headers["X-RateLimit-Remaining"] for a in writes] == ["3", "2", "1", "0", "0"]
        assert all(a.headers["X-RateLimit-Limit"] == "4" for a in writes)
        assert 0 < int(writes[4].headers["Retry-After"]) <= 60
        assert 0 < int(writes[4].headers["X-RateLimit-Reset"]) <= 60
        # Reads have their own bucket: the spent writes do not refuse them, and they spend no write.
        reads = [
            h.client.get("/v1/tasks/task-unified-1-nothere0", headers=auth(key)),
            h.client.get("/v1/account", headers=auth(key)),
            h.client.get("/v1/account", headers=auth(key)),
        ]
        assert [a.status_code for a in reads] == [404, 200, 429]
        assert [a.headers["X-RateLimit-Remaining"] for a in reads] == ["1", "0", "0"]
        assert all(a.headers["X-RateLimit-Limit"] == "2" for a in reads)
        assert "reads per minute" in reads[2].json()["error"]["message"]
        assert 0 < int(reads[2].headers["Retry-After"]) <= 60


def test_memory_limiter_slides_its_window() -> None:
    now = [1000.0]
    limiter = MemoryLimiter(clock=lambda: now[0])

    async def scenario() -> None:
        assert (await limiter.hit("k", 2)).allowed
        now[0] += 30
        assert (await limiter.hit("k", 2)).allowed
        assert not (await limiter.hit("k", 2)).allowed
        now[0] += 29.5
        assert not (await limiter.hit("k", 2)).allowed
        now[0] += 1  # the first request left the window; the second is still in it
        decision = await limiter.hit("k", 2)
        assert decision.allowed and decision.remaining == 0
        assert (await limiter.hit("other", 2)).allowed

    asyncio.run(scenario())


def test_redis_limiter_counts_across_clients() -> None:
    require_redis()
    key = f"test-{secrets.token_hex(4)}"

    async def scenario() -> None:
        a, b = RedisLimiter(REDIS_URL), RedisLimiter(REDIS_URL)
        try:
            results = [await (a if i % 2 else b).hit(key, 3) for i in range(5)]
            assert [r.allowed for r in results] == [True, True, True, False, False]
            assert results[-1].reset_s > 0
        finally:
            await a.aclose()
            await b.aclose()

    asyncio.run(scenario())


@pytest.mark.slow
def test_redis_rate_limit_is_shared_by_two_api_processes(
    tmp_path: Path, postgres_backend: Backend, processes: Processes
) -> None:
    require_redis()
    settings = _settings(tmp_path, postgres_backend)
    env = {**settings_env(settings), "REELGATE_REDIS_URL": REDIS_URL}
    bases = start_api_processes(processes, env)
    with harness(settings) as h:
        key, _ = h.new_key(credits=1, limits=KeyLimits(read_rpm_limit=10))
    statuses = [httpx.get(f"{bases[i % 2]}/v1/account", headers=auth(key), timeout=10) for i in range(14)]
    assert [s.status_code for s in statuses].count(200) == 10
    assert [s.status_code for s in statuses].count(429) == 4
    assert {s.headers["X-RateLimit-Limit"] for s in statuses} == {"10"}


def test_admin_api(tmp_path: Path, sqlite_backend: Backend) -> None:
    settings = _settings(tmp_path, sqlite_backend, admin_token=ADMIN_TOKEN)
    admin = auth(ADMIN_TOKEN)
    with harness(settings) as h:
        assert h.client.get("/admin/v1/accounts").status_code == 401
        assert h.client.get("/admin/v1/accounts", headers=auth("x" * 40)).status_code == 401
        created = h.client.post("/admin/v1/accounts", json={"name": "acme", "credits": 12}, headers=admin)
        assert created.status_code == 200, created.text
        account_id = created.json()["id"]
        key = h.client.post(
            "/admin/v1/keys", json={"name": "k", "account_id": account_id, "rpm": 50}, headers=admin
        ).json()
        assert key["key"].startswith("rg_") and key["webhook_secret"].startswith("whsec_")
        granted = h.client.post(f"/admin/v1/accounts/{account_id}/grants", json={"credits": 3}, headers=admin)
        assert granted.json()["balance"] == 15 and len(granted.json()["keys"]) == 1
        assert h.client.post("/v1/videos/generations", json=create_body(), headers=auth(key["key"])).status_code == 200
        ledger = h.client.get(f"/admin/v1/accounts/{account_id}/ledger", headers=admin).json()
        assert [entry["kind"] for entry in ledger["data"]] == ["reserve", "grant", "grant"]
        assert h.client.get("/admin/v1/audit", headers=admin).json()["ok"] is True
        missing = h.client.post("/admin/v1/accounts/acct_nope/grants", json={"credits": 1}, headers=admin)
        assert missing.status_code == 404 and missing.json()["error"]["param"] == "account_id"
        revoked = h.client.post(f"/admin/v1/keys/{key['info']['id']}/revoke", headers=admin)
        assert revoked.json()["status"] == "revoked"
        assert h.client.get("/v1/account", headers=auth(key["key"])).status_code == 401


def test_admin_routes_absent_without_token_and_weak_token_refused(tmp_path: Path, sqlite_backend: Backend) -> None:
    with harness(_settings(tmp_path, sqlite_backend)) as h:
        assert h.client.get("/admin/v1/accounts", headers=auth(ADMIN_TOKEN)).status_code == 404
    for weak in ("short", "a" * 40, "changeme-changeme-changeme-changeme"):
        with pytest.raises(ValueError, match="too weak"):
            create_app(make_settings(tmp_path / "w", sqlite_backend, admin_token=weak))
