"""Reads are not creates: every GET spends the key's read bucket (`read_rpm`: per key, per group, default
1200), every other request its write bucket (`rpm`), and each answer carries the X-RateLimit-* of its own
bucket."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from reelgate.accounts.repository import KeyLimits
from reelgate.app import create_app
from reelgate.config import DEFAULT_MODEL
from tests.conftest import Backend, advertise_worker, auth, create_key, make_settings, migrate_db
from tests.images import astronaut, data_uri

BODY = {"model": DEFAULT_MODEL, "prompt": "zoom", "image_urls": [data_uri(astronaut()[:64, :64], "JPEG")]}


def test_polling_spends_no_creates_and_shows_the_read_bucket(tmp_path: Path, sqlite_backend: Backend) -> None:
    settings = make_settings(tmp_path / "home", sqlite_backend)
    migrate_db(settings)
    advertise_worker(settings)
    key = create_key(settings, limits=KeyLimits(rpm_limit=2))
    with TestClient(create_app(settings)) as client:
        task_id = client.post("/v1/videos/generations", json=BODY, headers=auth(key)).json()["id"]
        # The vendor's client polls every 3-5 s: far more reads than its key's two writes a minute.
        for _ in range(20):
            polled = client.get(f"/v1/tasks/{task_id}", headers=auth(key))
            assert polled.status_code == 200
        assert polled.headers["X-RateLimit-Limit"] == "1200"  # the default read limit
        assert polled.headers["X-RateLimit-Remaining"] == str(1200 - 20)
        for path in ("/v1/tasks", "/v1/account", "/api/v1/files/quota", "/api/v1/files/list"):
            assert client.get(path, headers=auth(key)).headers["X-RateLimit-Limit"] == "1200", path
        # The second write of the minute still gets through, and shows the write bucket.
        second = client.post("/v1/videos/generations", json=BODY, headers=auth(key))
        assert second.status_code == 200
        assert (second.headers["X-RateLimit-Limit"], second.headers["X-RateLimit-Remaining"]) == ("2", "0")
        third = client.post(f"/v1/tasks/{task_id}/cancel", headers=auth(key))
        assert third.status_code == 429 and third.headers["X-RateLimit-Limit"] == "2"
        assert "requests (creates and other writes) per minute" in third.json()["error"]["message"]
        # Spent writes refuse no read.
        assert client.get(f"/v1/tasks/{task_id}", headers=auth(key)).status_code == 200


def test_a_keys_read_limit_refuses_reads_only(tmp_path: Path, sqlite_backend: Backend) -> None:
    settings = make_settings(tmp_path / "home", sqlite_backend)
    migrate_db(settings)
    advertise_worker(settings)
    key = create_key(settings, limits=KeyLimits(read_rpm_limit=3))
    with TestClient(create_app(settings)) as client:
        task_id = client.post("/v1/videos/generations", json=BODY, headers=auth(key)).json()["id"]
        reads = [
            client.get(f"/v1/tasks/{task_id}", headers=auth(key)),
            client.get("/v1/tasks", headers=auth(key)),
            client.get("/api/v1/files/list", headers=auth(key)),
            client.get(f"/v1/tasks/{task_id}/events", headers=auth(key)),  # a stream is a read too
        ]
        assert [r.status_code for r in reads] == [200, 200, 200, 429]
        assert reads[3].json()["error"]["type"] == "rate_limit_error" and 0 < int(reads[3].headers["Retry-After"]) <= 60
        assert {r.headers["X-RateLimit-Limit"] for r in reads} == {"3"}
        # Writes are a bucket of their own (the default 6000 a minute).
        cancel = client.post(f"/v1/tasks/{task_id}/cancel", headers=auth(key))
        assert cancel.status_code == 200 and cancel.headers["X-RateLimit-Limit"] == "6000"
        account = client.post("/api/v1/files/upload/base64", json={"base64_data": "@"}, headers=auth(key))
        assert account.status_code == 400 and account.headers["X-RateLimit-Limit"] == "6000"


def test_a_groups_read_limit_and_the_setting(tmp_path: Path, backend: Backend) -> None:
    pricing = tmp_path / "pricing.toml"
    pricing.write_text('[default]\nbilling_rule = "per_second"\nprice = 1\n[groups.vip]\nread_rpm = 5000\nrpm = 50\n')
    settings = make_settings(tmp_path / "home", backend, pricing_file=pricing, default_read_rpm=700)
    migrate_db(settings)
    advertise_worker(settings)
    vip = create_key(settings, user_group="vip")
    plain = create_key(settings, name="plain")
    own = create_key(settings, name="own", user_group="vip", limits=KeyLimits(read_rpm_limit=9))
    with TestClient(create_app(settings)) as client:
        assert client.get("/v1/account", headers=auth(vip)).headers["X-RateLimit-Limit"] == "5000"
        assert client.get("/v1/account", headers=auth(plain)).headers["X-RateLimit-Limit"] == "700"
        mine = client.get("/v1/account", headers=auth(own))
        assert mine.headers["X-RateLimit-Limit"] == "9"
        assert mine.json()["key"]["limits"] == {"rpm": 50, "read_rpm": 9, "max_concurrent": 0}
