"""The vendor's file-hosting API served by reelgate: every route with the vendor's field names and wrapped
answers, every refusal, the quota, and an upload's `file_url` used in `image_urls`."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from reelgate.app import create_app
from reelgate.config import DEFAULT_MODEL, Settings
from reelgate.db.models import Task, UploadedFile
from reelgate.files.service import sweep_expired_files
from reelgate.resources import database_for
from reelgate.tasks.sweep import sweep_expired_results
from tests.conftest import Backend, advertise_worker, auth, create_key, make_settings, migrate_db
from tests.e2e.test_generation import wait_done
from tests.files.conftest import FIELDS, jpeg, png, wrapped_error, wrapped_ok
from tests.images import astronaut, encode

UPLOAD = "/api/v1/files/upload"


def _settings(tmp_path: Path, backend: Backend, **overrides: object) -> Settings:
    settings = make_settings(tmp_path / "home", backend, **overrides)
    migrate_db(settings)
    advertise_worker(settings)  # creates with an API-only app stay pending
    return settings


def _path(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _db(settings: Settings, work):  # type: ignore[no-untyped-def]
    async def run():  # type: ignore[no-untyped-def]
        db = database_for(settings)
        try:
            async with db.transaction() as session:
                return await work(session)
        finally:
            await db.dispose()

    return asyncio.run(run())


def _stored(settings: Settings) -> list[str]:
    root = settings.home / "videos"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_base64_raw_and_data_url_uploads_answer_with_the_vendors_fields(tmp_path: Path, backend: Backend) -> None:
    settings = _settings(tmp_path, backend)
    key = create_key(settings)
    with TestClient(create_app(settings)) as client:
        raw = wrapped_ok(
            client.post(
                f"{UPLOAD}/base64",
                json={"base64_data": base64.b64encode(png()).decode(), "upload_path": "shots/a", "file_name": "a.png"},
                headers=auth(key),
            )
        )
        assert set(raw) == FIELDS
        assert raw["file_id"].startswith("file_") and raw["mime_type"] == "image/png"
        assert (raw["file_name"], raw["original_name"], raw["upload_path"]) == ("a.png", "a.png", "shots/a")
        assert raw["file_size"] == len(png())
        assert raw["upload_time"].endswith("Z") and raw["expires_at"].endswith("Z")
        assert raw["download_url"] == raw["file_url"] + "&download=1"
        data_url = "data:image/jpeg;base64," + base64.b64encode(jpeg()).decode()
        as_data_url = wrapped_ok(client.post(f"{UPLOAD}/base64", json={"base64_data": data_url}, headers=auth(key)))
        assert as_data_url["mime_type"] == "image/jpeg" and as_data_url["file_name"].endswith(".jpeg")
        # The links serve the bytes, and the download link as an attachment.
        served = client.get(_path(raw["file_url"]))
        assert served.status_code == 200 and served.content == png() and served.headers["content-type"] == "image/png"
        download = client.get(_path(raw["download_url"]))
        assert download.headers["content-disposition"].startswith("attachment")
        # 72 hours by default.
        expires = int(urlsplit(raw["file_url"]).query.split("expires=")[1].split("&")[0])
        assert abs(expires - (time.time() + 72 * 3600)) < 60


def test_stream_upload_takes_the_multipart_parts_of_the_vendors_client(tmp_path: Path, sqlite_backend: Backend) -> None:
    settings = _settings(tmp_path, sqlite_backend)
    key = create_key(settings)
    with TestClient(create_app(settings)) as client:
        plain = wrapped_ok(
            client.post(
                f"{UPLOAD}/stream", files={"file": ("photo.webp", encode(astronaut(), "WEBP"))}, headers=auth(key)
            )
        )
        assert (plain["original_name"], plain["file_name"], plain["mime_type"]) == (
            "photo.webp",
            "photo.webp",
            "image/webp",
        )
        named = wrapped_ok(
            client.post(
                f"{UPLOAD}/stream",
                files={"file": ("c:\\pictures\\raw.jpg", jpeg())},
                data={"uploadPath": "in", "fileName": "first-frame.jpg"},
                headers=auth(key),
            )
        )
        assert (named["original_name"], named["file_name"], named["upload_path"]) == (
            "raw.jpg",
            "first-frame.jpg",
            "in",
        )
        missing = wrapped_error(client.post(f"{UPLOAD}/stream", data={"fileName": "x"}, headers=auth(key)), 400)
        assert missing["param"] == "file"
        bad_path = wrapped_error(
            client.post(
                f"{UPLOAD}/stream", files={"file": ("a.png", png())}, data={"uploadPath": "../up"}, headers=auth(key)
            ),
            400,
        )
        assert bad_path["param"] == "uploadPath"


def test_url_upload_downloads_through_the_safe_client(
    tmp_path: Path, sqlite_backend: Backend, image_server: tuple[str, Path]
) -> None:
    base_url, root = image_server
    (root / "frame.png").write_bytes(png())
    (root / "notes.txt").write_text("not an image")
    settings = _settings(tmp_path, sqlite_backend)
    key = create_key(settings)
    with TestClient(create_app(settings)) as client:
        data = wrapped_ok(client.post(f"{UPLOAD}/url", json={"file_url": f"{base_url}/frame.png"}, headers=auth(key)))
        assert data["original_name"] == "frame.png" and data["file_size"] == len(png())
        not_image = wrapped_error(
            client.post(f"{UPLOAD}/url", json={"file_url": f"{base_url}/notes.txt"}, headers=auth(key)), 400
        )
        assert not_image["param"] == "file_url" and "not a recognised image" in not_image["message"]
        gone = wrapped_error(
            client.post(f"{UPLOAD}/url", json={"file_url": f"{base_url}/none.png"}, headers=auth(key)), 400
        )
        assert "could not be downloaded" in gone["message"] and "404" in gone["message"]
    refusing = settings.model_copy(update={"allow_private_networks": False})
    with TestClient(create_app(refusing)) as client:
        private = wrapped_error(
            client.post(f"{UPLOAD}/url", json={"file_url": f"{base_url}/frame.png"}, headers=auth(key)), 400
        )
        assert private["param"] == "file_url" and "private or internal" in private["message"]


@pytest.mark.parametrize(
    ("make", "overrides", "words"),
    [
        (lambda: encode(astronaut(), "GIF"), {}, "GIF images are not supported"),
        (lambda: png(300, 200), {"max_image_mb": 0.01}, "limit of 10485 bytes"),
        (lambda: png(300, 200), {"max_image_pixels": 10_000}, "more than the limit of 10000 pixels"),
        (lambda: png(32, 300), {}, "at least 64 px"),
        (lambda: b"%PDF-1.4 not an image", {}, "not a recognised image"),
        (lambda: b"", {}, "empty"),
    ],
)
def test_uploads_the_video_api_could_never_use_are_refused_with_the_reason(
    tmp_path: Path, sqlite_backend: Backend, make, overrides: dict[str, object], words: str
) -> None:  # type: ignore[no-untyped-def]
    settings = _settings(tmp_path, sqlite_backend, **overrides)
    key = create_key(settings)
    content = make()
    with TestClient(create_app(settings)) as client:
        as_stream = wrapped_error(
            client.post(f"{UPLOAD}/stream", files={"file": ("x", content)}, headers=auth(key)), 400
        )
        assert as_stream["param"] == "file" and words in as_stream["message"], as_stream
        if content:
            as_base64 = wrapped_error(
                client.post(
                    f"{UPLOAD}/base64", json={"base64_data": base64.b64encode(content).decode()}, headers=auth(key)
                ),
                400,
            )
            assert as_base64["param"] == "base64_data" and words in as_base64["message"], as_base64
    assert _stored(settings) == []  # nothing refused was stored


def test_base64_that_is_not_base64_and_bad_bodies(tmp_path: Path, sqlite_backend: Backend) -> None:
    settings = _settings(tmp_path, sqlite_backend)
    key = create_key(settings)
    with TestClient(create_app(settings)) as client:
        broken = wrapped_error(client.post(f"{UPLOAD}/base64", json={"base64_data": "@@@"}, headers=auth(key)), 400)
        assert broken["param"] == "base64_data" and "base64" in broken["message"]
        missing = wrapped_error(client.post(f"{UPLOAD}/base64", json={}, headers=auth(key)), 400)
        assert missing["param"] == "base64_data"
        typed = wrapped_error(client.post(f"{UPLOAD}/base64", json={"base64_data": 5}, headers=auth(key)), 400)
        assert typed["param"] == "base64_data"
        unauthenticated = wrapped_error(client.get("/api/v1/files/quota"), 401)
        assert unauthenticated["type"] == "authentication_error"
        wrong_key = wrapped_error(client.get("/api/v1/files/quota", headers=auth("rg_nope_nope")), 401)
        assert wrong_key["type"] == "authentication_error"
        unknown = wrapped_error(client.get("/api/v1/files/nothing/here", headers=auth(key)), 404)
        assert unknown["type"] == "not_found_error"


def test_list_quota_and_delete(tmp_path: Path, backend: Backend) -> None:
    settings = _settings(tmp_path, backend, default_max_files=3)
    key = create_key(settings)
    other = create_key(settings, name="other")
    with TestClient(create_app(settings)) as client:
        ids = [
            wrapped_ok(client.post(f"{UPLOAD}/stream", files={"file": (f"{n}.png", png())}, headers=auth(key)))[
                "file_id"
            ]
            for n in range(3)
        ]
        assert wrapped_ok(client.get("/api/v1/files/quota", headers=auth(key))) == {
            "user_group": "default",
            "used_files": 3,
            "max_files": 3,
            "remain_files": 0,
        }
        full = wrapped_error(client.post(f"{UPLOAD}/stream", files={"file": ("4.png", png())}, headers=auth(key)), 403)
        assert "3 of its 3 files" in full["message"] and "delete" in full["fallback_suggestion"]
        first = wrapped_ok(client.get("/api/v1/files/list?page=1&pageSize=2", headers=auth(key)))
        assert first["total"] == 3 and [f["file_id"] for f in first["files"]] == ids[::-1][:2]
        assert {"file_id", "file_name", "file_size", "upload_time"} <= set(first["files"][0])
        second = wrapped_ok(client.get("/api/v1/files/list?page=2&pageSize=2", headers=auth(key)))
        assert [f["file_id"] for f in second["files"]] == [ids[0]]
        assert wrapped_ok(client.get("/api/v1/files/list", headers=auth(other))) == {"total": 0, "files": []}
        assert wrapped_error(client.get("/api/v1/files/list?pagesize=2", headers=auth(key)), 400)["param"] == "pagesize"
        assert (
            wrapped_error(client.get("/api/v1/files/list?pageSize=101", headers=auth(key)), 400)["param"] == "pageSize"
        )
        # Another account's file does not exist for it; the owner deletes it, once.
        assert wrapped_error(client.delete(f"/api/v1/files/{ids[0]}", headers=auth(other)), 404)["param"] == "file_id"
        link = first["files"][1]["file_url"]
        assert client.get(_path(link)).status_code == 200
        assert wrapped_ok(client.delete(f"/api/v1/files/{ids[1]}", headers=auth(key))) == {
            "file_id": ids[1],
            "deleted": True,
        }
        assert wrapped_error(client.delete(f"/api/v1/files/{ids[1]}", headers=auth(key)), 404)["param"] == "file_id"
        assert client.get(_path(link)).status_code == 404  # its object is gone
        assert wrapped_ok(client.get("/api/v1/files/quota", headers=auth(key)))["remain_files"] == 1
        wrapped_ok(client.post(f"{UPLOAD}/stream", files={"file": ("5.png", png())}, headers=auth(key)))


def test_a_groups_quota_comes_from_the_pricing_file(tmp_path: Path, sqlite_backend: Backend) -> None:
    pricing = tmp_path / "pricing.toml"
    pricing.write_text('[default]\nbilling_rule = "per_second"\nprice = 1\n[groups.vip]\nmax_files = 500\n')
    settings = _settings(tmp_path, sqlite_backend, pricing_file=pricing)
    vip = create_key(settings, user_group="vip")
    plain = create_key(settings, name="plain")
    with TestClient(create_app(settings)) as client:
        assert wrapped_ok(client.get("/api/v1/files/quota", headers=auth(vip)))["max_files"] == 500
        assert wrapped_ok(client.get("/api/v1/files/quota", headers=auth(plain)))["max_files"] == 100


def test_an_uploaded_file_works_in_image_urls_with_private_networks_refused(tmp_path: Path, backend: Backend) -> None:
    # The server's own links point at loopback: a URL the outbound client would refuse to fetch.
    settings = _settings(
        tmp_path, backend, allow_private_networks=False, public_url="http://127.0.0.1:8000", poll_interval_s=0.1
    )
    key = create_key(settings)
    with TestClient(create_app(settings, workers=1)) as client:
        first = wrapped_ok(client.post(f"{UPLOAD}/stream", files={"file": ("a.png", png())}, headers=auth(key)))
        last = wrapped_ok(client.post(f"{UPLOAD}/stream", files={"file": ("b.jpg", jpeg())}, headers=auth(key)))
        body = {"model": DEFAULT_MODEL, "prompt": "morph", "image_urls": [first["file_url"], last["file_url"]]}
        created = client.post("/v1/videos/generations", json=body, headers=auth(key))
        assert created.status_code == 200, created.text
        done = wait_done(client, key, created.json()["id"])[-1]
        assert done["status"] == "completed", done
        row = _db(settings, lambda s: s.scalar(select(Task).where(Task.id == done["id"])))
        assert row.image_urls == [f"stored:files/{first['file_id']}.png", f"stored:files/{last['file_id']}.jpeg"]
        # A plain loopback URL is still refused, as before.
        refused = client.post(
            "/v1/videos/generations", json={**body, "image_urls": ["http://127.0.0.1:8000/x.png"]}, headers=auth(key)
        )
        assert refused.status_code == 400 and refused.json()["error"]["param"] == "image_urls[0]"


def test_a_deleted_expired_or_altered_file_url_is_a_precise_400(tmp_path: Path, sqlite_backend: Backend) -> None:
    settings = _settings(tmp_path, sqlite_backend)
    key = create_key(settings)
    with TestClient(create_app(settings)) as client:
        kept = wrapped_ok(client.post(f"{UPLOAD}/stream", files={"file": ("k.png", png())}, headers=auth(key)))
        deleted = wrapped_ok(client.post(f"{UPLOAD}/stream", files={"file": ("d.png", png())}, headers=auth(key)))
        expired = wrapped_ok(client.post(f"{UPLOAD}/stream", files={"file": ("e.png", png())}, headers=auth(key)))
        wrapped_ok(client.delete(f"/api/v1/files/{deleted['file_id']}", headers=auth(key)))
        _db(
            settings,
            lambda s: s.execute(
                update(UploadedFile).where(UploadedFile.id == expired["file_id"]).values(expires_at=time.time() - 1)
            ),
        )

        def create(*urls: str) -> dict[str, object]:
            body = {"model": DEFAULT_MODEL, "prompt": "zoom", "image_urls": list(urls)}
            answer = client.post("/v1/videos/generations", json=body, headers=auth(key))
            assert answer.status_code == 400, answer.text
            error: dict[str, object] = answer.json()["error"]
            return error

        gone = create(kept["file_url"], deleted["file_url"])
        assert gone["param"] == "image_urls[1]" and f"{deleted['file_id']} was deleted" in str(gone["message"])
        late = create(expired["file_url"])
        assert late["param"] == "image_urls[0]" and f"{expired['file_id']} expired" in str(late["message"])
        tampered = create(kept["file_url"].replace("signature=", "signature=0"))
        assert tampered["param"] == "image_urls[0]" and "signature" in str(tampered["message"])
        stretched = create(kept["file_url"].replace("expires=", "expires=9"))
        assert stretched["param"] == "image_urls[0]" and "signature" in str(stretched["message"])
        unsigned = create(kept["file_url"].split("?")[0])
        assert unsigned["param"] == "image_urls[0]" and "missing" in str(unsigned["message"])


def test_a_file_deleted_while_its_task_is_queued_fails_it_with_image_processing_error(
    tmp_path: Path, sqlite_backend: Backend
) -> None:
    settings = _settings(tmp_path, sqlite_backend)
    key = create_key(settings)
    with TestClient(create_app(settings, workers=0)) as client:
        upload = wrapped_ok(client.post(f"{UPLOAD}/stream", files={"file": ("a.png", png())}, headers=auth(key)))
        body = {"model": DEFAULT_MODEL, "prompt": "zoom", "image_urls": [upload["file_url"]]}
        task_id = client.post("/v1/videos/generations", json=body, headers=auth(key)).json()["id"]
        wrapped_ok(client.delete(f"/api/v1/files/{upload['file_id']}", headers=auth(key)))
    with TestClient(create_app(settings, workers=1)) as client:
        done = wait_done(client, key, task_id)[-1]
    assert done["status"] == "failed" and done["error"]["code"] == "image_processing_error"
    assert "image_urls[0]" in done["error"]["message"] and "gone" in done["error"]["message"]


def test_the_sweep_deletes_expired_files_and_no_task_purge_deletes_an_upload(
    tmp_path: Path, sqlite_backend: Backend
) -> None:
    settings = _settings(tmp_path, sqlite_backend)
    key = create_key(settings)
    with TestClient(create_app(settings, workers=1)) as client:
        upload = wrapped_ok(client.post(f"{UPLOAD}/stream", files={"file": ("a.png", png())}, headers=auth(key)))
        body = {"model": DEFAULT_MODEL, "prompt": "zoom", "image_urls": [upload["file_url"]]}
        tasks = [client.post("/v1/videos/generations", json=body, headers=auth(key)).json()["id"] for _ in range(2)]
        for task_id in tasks:
            assert wait_done(client, key, task_id)[-1]["status"] == "completed"
        resources = client.app.state.resources  # type: ignore[attr-defined]
        portal = client.portal
        assert portal is not None
        upload_key = f"files/{upload['file_id']}.png"
        # Both tasks expire and are purged; the upload they share is not theirs to delete.
        after_tasks = time.time() + settings.result_ttl_s + 1
        assert portal.call(lambda: sweep_expired_results(resources, now=after_tasks)) == 2
        assert _stored(settings) == [upload_key]
        assert portal.call(lambda: sweep_expired_files(resources, now=after_tasks)) == 0
        # Once the file itself expires, the sweep deletes it and forgets its row.
        after_file = time.time() + settings.file_ttl_s + 1
        assert portal.call(lambda: sweep_expired_files(resources, now=after_file)) == 1
        assert _stored(settings) == []
        assert _db(settings, lambda s: s.get(UploadedFile, upload["file_id"])) is None
