"""The storage settings: `REELGATE_STORAGE_URL` names local disk or a bucket (anything else refuses the start,
naming the setting), result links follow the storage unless told otherwise, `build_storage` builds what the
URL names, and a storage that cannot be used stops the API and the worker at start with its reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from typer.testing import CliRunner

from reelgate.app import create_app
from reelgate.cli import app as cli_app
from reelgate.config import Settings, StorageLocation
from reelgate.storage.base import StorageUnavailable
from reelgate.storage.factory import build_storage
from reelgate.storage.links import LinkSigner
from reelgate.storage.local import LocalStorage
from reelgate.storage.s3 import S3Storage
from tests.conftest import make_settings, migrate_db, settings_env, sqlite_backend_at
from tests.s3server import REGION

SIGNER = LinkSigner(b"k" * 32, "http://testserver")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("ftp://files.example/videos", "use file:///path or s3://bucket/prefix"),
        ("/var/lib/reelgate/videos", "not a bare path"),
        ("s3://", "names no bucket"),
        ("s3:///prefix", "names no bucket"),
        ("s3://ab", "is not a bucket name"),
        ("s3://Videos_Bucket", "is not a bucket name"),
        ("s3://AKIA:secret@videos", "credentials never go in the URL"),
        ("s3://videos/a//b", "empty, '.' or '..' segment"),
        ("s3://videos/../other", "empty, '.' or '..' segment"),
        ("s3://videos?region=eu-west-1", "no query or fragment"),
        ("file://relative/videos", "file:///absolute/path"),
        ("file://", "file:///absolute/path"),
    ],
)
def test_a_storage_url_we_cannot_use_is_refused_naming_the_setting(tmp_path: Path, url: str, why: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(home=tmp_path, storage_url=url)
    message = str(refused.value)
    assert f"REELGATE_STORAGE_URL={url!r}" in message and why in message


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("file:///srv/videos", StorageLocation(path=Path("/srv/videos"))),
        ("file://localhost/srv/my%20videos", StorageLocation(path=Path("/srv/my videos"))),
        ("s3://videos", StorageLocation(bucket="videos")),
        ("s3://videos/", StorageLocation(bucket="videos")),
        ("s3://my.videos-1/prod/eu/", StorageLocation(bucket="my.videos-1", prefix="prod/eu")),
    ],
)
def test_a_storage_url_names_a_directory_or_a_bucket_and_prefix(
    tmp_path: Path, url: str, location: StorageLocation
) -> None:
    assert Settings(home=tmp_path, storage_url=url).storage_location == location


def test_empty_is_the_videos_directory_of_home_served_by_proxy_links(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    assert settings.storage_location == StorageLocation(path=tmp_path / "videos")
    assert settings.resolved_result_links == "proxy"
    storage = build_storage(settings, SIGNER)
    assert isinstance(storage, LocalStorage) and storage.root == tmp_path / "videos"
    storage.check()


def test_result_links_follow_the_storage_unless_set(tmp_path: Path) -> None:
    assert Settings(home=tmp_path, storage_url="s3://videos").resolved_result_links == "presigned"
    assert Settings(home=tmp_path, storage_url="s3://videos", result_links="proxy").resolved_result_links == "proxy"
    assert Settings(home=tmp_path, storage_url="file:///srv/videos", result_links="proxy").resolved_result_links == (
        "proxy"
    )
    with pytest.raises(ValidationError, match="REELGATE_RESULT_LINKS=presigned needs object storage"):
        Settings(home=tmp_path, result_links="presigned")
    with pytest.raises(ValidationError, match="result_links"):
        Settings(home=tmp_path, storage_url="s3://videos", result_links="public")


def test_an_endpoint_must_be_an_http_url(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="REELGATE_S3_ENDPOINT_URL='minio:9000'"):
        Settings(home=tmp_path, storage_url="s3://videos", s3_endpoint_url="minio:9000")


def test_build_storage_builds_a_bucket_with_its_prefix_and_link_mode(tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path,
        storage_url="s3://videos/prod",
        s3_endpoint_url="http://127.0.0.1:9",
        s3_region=REGION,
        s3_multipart_threshold_mb=16,
    )
    storage = build_storage(settings, SIGNER)
    assert isinstance(storage, S3Storage)
    assert (storage.bucket, storage.object_key("task-1-a1.mp4"), storage.presigned) == (
        "videos",
        "prod/task-1-a1.mp4",
        True,
    )
    assert storage.client.meta.endpoint_url == "http://127.0.0.1:9"
    assert storage.client.meta.region_name == REGION
    assert settings.s3_multipart_threshold_bytes == 16 * 1024 * 1024
    assert not (tmp_path / "videos").exists()  # object storage never touches the local videos directory


def test_local_storage_that_is_not_a_writable_directory_fails_its_check(tmp_path: Path) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a directory")
    with pytest.raises(StorageUnavailable, match="a-file is not a directory"):
        LocalStorage(in_the_way, SIGNER).check()
    with pytest.raises(StorageUnavailable, match="is not a directory"):
        LocalStorage(in_the_way / "videos", SIGNER).check()  # cannot even be made
    gone = LocalStorage(tmp_path / "removed", SIGNER)
    gone.check()
    gone.root.rmdir()
    with pytest.raises(StorageUnavailable, match="removed is not a directory"):
        gone.check()
    # The probe leaves nothing behind.
    usable = LocalStorage(tmp_path / "usable", SIGNER)
    usable.check()
    assert list(usable.root.iterdir()) == []


def test_the_app_refuses_to_start_on_a_local_root_it_cannot_use(tmp_path: Path) -> None:
    in_the_way = tmp_path / "a-file"
    in_the_way.write_text("not a directory")
    settings = make_settings(tmp_path / "home", sqlite_backend_at(tmp_path), storage_url=f"file://{in_the_way}")
    migrate_db(settings)
    with (
        pytest.raises(
            RuntimeError, match=f"^the storage cannot be used: {re.escape(str(in_the_way))} is not a directory$"
        ),
        TestClient(create_app(settings)),
    ):
        pass


def test_a_worker_refuses_to_start_on_a_missing_bucket(tmp_path: Path, s3_endpoint: str, aws_credentials: None) -> None:
    settings = make_settings(tmp_path / "home", sqlite_backend_at(tmp_path))
    migrate_db(settings)
    env = {
        **settings_env(settings),
        "REELGATE_STORAGE_URL": "s3://reelgate-never-created/videos",
        "REELGATE_S3_ENDPOINT_URL": s3_endpoint,
        "REELGATE_S3_REGION": REGION,
    }
    result = CliRunner().invoke(cli_app, ["worker", "--engines", "motion", "--concurrency", "1"], env=env)
    assert result.exit_code == 1, result.output
    assert "the storage cannot be used: bucket reelgate-never-created does not exist" in result.output
