"""The workers registry decides routing: a worker advertises its engines while it lives, and the API accepts a
model only when some live worker serves one of its engines (503 otherwise)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from reelgate.app import create_app
from reelgate.cli import app as cli
from reelgate.config import DEFAULT_MODEL, Settings
from reelgate.queue import registry
from reelgate.resources import Resources, database_for
from tests.conftest import (
    Backend,
    advertise_worker,
    auth,
    create_key,
    make_settings,
    migrate_db,
    settings_env,
    wait_for_live_worker,
)
from tests.e2e.processes import Processes, free_port, ready, wait_until
from tests.images import astronaut, data_uri

ADMIN_TOKEN = "4f0c3bd6a7e94a81b2d5c8e1f3a9076b5d2e8c4a1f7b3e9d"


def _body(model: str = DEFAULT_MODEL) -> dict[str, object]:
    return {"model": model, "prompt": "slow push in", "image_urls": [data_uri(astronaut())]}


def _rows(settings: Settings) -> list[tuple[str, float]]:
    async def read() -> list[tuple[str, float]]:
        db = database_for(settings)
        try:
            async with db.read() as session:
                return [(row.id, row.last_seen_at) for row in await registry.workers(session)]
        finally:
            await db.dispose()

    return asyncio.run(read())


def test_a_worker_advertises_while_it_runs_and_leaves_on_a_clean_stop(tmp_path: Path, backend: Backend) -> None:
    settings = make_settings(tmp_path / "home", backend, worker_ttl_s=0.9)
    migrate_db(settings)

    async def scenario() -> None:
        resources = Resources.build(settings)
        try:
            worker = resources.worker(concurrency=2)
            stop = asyncio.Event()
            running = asyncio.create_task(worker.run(stop))
            await asyncio.sleep(0.3)
            async with resources.db.read() as session:
                (row,) = await registry.workers(session)
            assert row.id == worker.owner and row.kind == "database" and row.concurrency == 2
            assert row.engines == {"motion": {"available": True, "reason": ""}}
            first_seen = row.last_seen_at
            await asyncio.sleep(0.8)  # past a heartbeat (every ttl/3)
            async with resources.db.read() as session:
                (row,) = await registry.workers(session)
            assert row.last_seen_at > first_seen
            stop.set()
            await running
            async with resources.db.read() as session:
                assert await registry.workers(session) == []
        finally:
            await resources.close()

    asyncio.run(scenario())


def test_no_live_worker_is_503_and_an_advert_that_expires_stops_routing(tmp_path: Path, backend: Backend) -> None:
    settings = make_settings(tmp_path / "home", backend, worker_ttl_s=3.0)
    migrate_db(settings)
    key = create_key(settings)
    with TestClient(create_app(settings, workers=0)) as client:
        refused = client.post("/v1/videos/generations", json=_body(), headers=auth(key))
        assert refused.status_code == 503 and refused.headers["Retry-After"] == "30"
        error = refused.json()["error"]
        assert error["type"] == "service_unavailable_error" and error["param"] == "model"
        assert error["fallback_suggestion"] == "retry after 30 seconds"
        advertise_worker(settings)
        # No wait: the API read the registry empty a moment ago, and a miss is read again before its 503, so a
        # worker that registered since serves at once.
        accepted = client.post("/v1/videos/generations", json=_body(), headers=auth(key))
        assert accepted.status_code == 200, accepted.text
        assert accepted.json()["task_info"]["engine"] == "motion"
        # The advert is never renewed: that worker is gone once the TTL has passed.
        wait_until(
            lambda: client.post("/v1/videos/generations", json=_body(), headers=auth(key)).status_code == 503,
            15,
            "the expired advert to stop routing",
        )


def test_workers_are_listed_by_cli_admin_api_readyz_and_metrics(tmp_path: Path, sqlite_backend: Backend) -> None:
    settings = make_settings(tmp_path / "home", sqlite_backend, admin_token=ADMIN_TOKEN)
    migrate_db(settings)
    with TestClient(create_app(settings, workers=1)) as client:
        listing = client.get("/admin/v1/workers", headers=auth(ADMIN_TOKEN))
        assert listing.status_code == 200, listing.text
        (worker,) = listing.json()["data"]
        assert worker["live"] and worker["kind"] == "database" and worker["pid"] == os.getpid()
        assert worker["engines"]["motion"]["available"] is True
        assert listing.json()["live_by_engine"] == {"motion": 1}
        assert client.get("/readyz").json()["live_workers"] == {"motion": 1}
        assert 'reelgate_live_workers{engine="motion"} 1.0' in client.get("/metrics").text
        result = CliRunner().invoke(cli, ["workers", "list", "--json"], env=settings_env(settings))
        assert result.exit_code == 0, result.output
        assert [w["id"] for w in json.loads(result.output)["data"]] == [worker["id"]]
        table = CliRunner().invoke(cli, ["workers", "list"], env=settings_env(settings))
        assert table.exit_code == 0 and "live workers per engine: motion: 1" in table.output
    assert _rows(settings) == []  # the in-process worker left the registry with the app


@pytest.mark.slow
def test_an_api_without_weights_routes_to_a_worker_that_has_them(
    tmp_path: Path, backend: Backend, processes: Processes
) -> None:
    """The API process has no Wan weights; a worker process with (tiny, random) weights advertises `wan`, so the
    API routes there; once that worker is gone (killed, its advert expired), the API answers 503."""
    pytest.importorskip("diffusers", reason="the gpu extra (make install-gpu) builds the tiny Wan pipeline")
    from tests.engines.diffusion_fixtures import save_tiny_wan

    weights = save_tiny_wan(tmp_path / "tiny-wan")
    models = {"wan-video": ["wan"]}
    settings = make_settings(tmp_path / "home", backend, worker_ttl_s=3.0, models=models)
    migrate_db(settings)
    key = create_key(settings, credits=1000)
    env = {**settings_env(settings), "REELGATE_MODELS": json.dumps(models)}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes.start("api", ["serve", "--port", str(port), "--workers", "0"], env)  # no REELGATE_WAN_MODEL_DIR
    wait_until(lambda: ready(base), 30, "the API to start")
    assert httpx.get(f"{base}/readyz", timeout=5).json()["engines"]["wan"] is False  # not runnable here
    create = f"{base}/v1/videos/generations"
    assert httpx.post(create, json=_body("wan-video"), headers=auth(key), timeout=30).status_code == 503

    gpu_env = {
        **env,
        "REELGATE_WAN_MODEL_DIR": str(weights),
        "REELGATE_GPU_DEVICE": "cpu",
        "REELGATE_DIFFUSION_DTYPE": "float32",
        "REELGATE_DIFFUSION_SHORT_SIDE_PX": "32",
        "REELGATE_WAN_STEPS": "2",
    }
    worker = processes.start("gpu-worker", ["worker", "--concurrency", "1"], gpu_env)
    wait_for_live_worker(settings, "wan")
    wait_until(lambda: httpx.get(f"{base}/readyz", timeout=5).json()["live_workers"]["wan"] == 1, 10, "readyz")
    accepted = httpx.post(create, json=_body("wan-video"), headers=auth(key), timeout=30)
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["task_info"]["engine"] == "wan"

    os.kill(worker.pid, signal.SIGKILL)  # no clean stop: only the expiry of its advert tells
    worker.wait()
    wait_until(
        lambda: httpx.post(create, json=_body("wan-video"), headers=auth(key), timeout=30).status_code == 503,
        15,
        "the API to stop routing to the dead worker",
    )


def test_creates_in_flight_when_the_registry_read_ages_share_one_read(
    tmp_path: Path, backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Every create asks which engines are served; under load dozens are in flight when the last read turns a
    # second old, and each used to read the registry itself (on PostgreSQL the read yields to the others).
    settings = make_settings(tmp_path / "home", backend)
    migrate_db(settings)
    advertise_worker(settings)
    reads: list[float] = []
    real = registry.live_engines

    async def counted(*args: object, **kwargs: object) -> dict[str, int]:
        reads.append(1)
        await asyncio.sleep(0.05)  # a slow database: the other asks arrive while this read is out
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(registry, "live_engines", counted)

    async def scenario() -> None:
        db = database_for(settings)
        try:
            live = registry.LiveEngines(db, ttl_s=settings.worker_ttl_s, max_age_s=0.2)
            first = await asyncio.gather(*(live.counts() for _ in range(8)))
            # Never read yet: each waits for an answer rather than taking an empty one.
            assert all(found == {"motion": 1} for found in first)
            reads.clear()
            await asyncio.sleep(0.3)
            aged = await asyncio.gather(*(live.counts() for _ in range(32)))
            assert len(reads) == 1 and all(found == {"motion": 1} for found in aged)
            assert await live.counts(fresh=True) == {"motion": 1} and len(reads) == 2  # fresh: read now
        finally:
            await db.dispose()

    asyncio.run(scenario())
