"""What only S3 storage does, against a real S3-protocol server on loopback: keys under the URL's prefix,
multipart uploads above the threshold, presigned links, and a check that names what is wrong with the bucket,
the credentials or the endpoint."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from reelgate.config import PRESIGNED_MAX_S, Settings
from reelgate.storage.base import ObjectMissing, StorageUnavailable
from reelgate.storage.factory import build_storage
from reelgate.storage.links import LinkSigner
from reelgate.storage.s3 import S3Storage
from tests.s3server import REGION, admin_client, bucket_keys, enforce_credentials

SIGNER = LinkSigner(b"k" * 32, "http://testserver")
MIB = 1024 * 1024


def _storage(endpoint: str, bucket: str, **overrides: object) -> S3Storage:
    values: dict[str, object] = {
        "bucket": bucket,
        "prefix": "",
        "links": SIGNER,
        "presigned": False,
        "endpoint_url": endpoint,
        "region": REGION,
    }
    values.update(overrides)
    return S3Storage(**values)  # type: ignore[arg-type]


def _etag(endpoint: str, bucket: str, key: str) -> str:
    return str(admin_client(endpoint).head_object(Bucket=bucket, Key=key)["ETag"]).strip('"')


def test_keys_live_under_the_prefix_of_the_url(s3_endpoint: str, s3_bucket: str, tmp_path: Path) -> None:
    settings = Settings(
        home=tmp_path, storage_url=f"s3://{s3_bucket}/deploy/one/", s3_endpoint_url=s3_endpoint, s3_region=REGION
    )
    storage = build_storage(settings, SIGNER)
    storage.put_stream("inputs/task-1/0.png", io.BytesIO(b"png"))
    storage.put_stream("task-1-a1.mp4", io.BytesIO(b"mp4"))
    assert bucket_keys(s3_endpoint, s3_bucket) == ["deploy/one/inputs/task-1/0.png", "deploy/one/task-1-a1.mp4"]
    # Stored with its type, so a presigned download is served as a video.
    head = admin_client(s3_endpoint).head_object(Bucket=s3_bucket, Key="deploy/one/task-1-a1.mp4")
    assert head["ContentType"] == "video/mp4"


def test_a_file_above_the_threshold_goes_up_in_parts_and_reads_back_identical(
    s3_endpoint: str, s3_bucket: str, tmp_path: Path
) -> None:
    storage = _storage(s3_endpoint, s3_bucket, multipart_threshold_bytes=1 * MIB)
    data = os.urandom(13 * MIB)  # two parts of boto3's 8 MiB
    source = tmp_path / "big.mp4"
    source.write_bytes(data)
    storage.put_file("task-big-a1.mp4", source)
    assert not source.exists()  # handed over, as put_file does on every storage
    # S3 gives a multipart object the ETag "<md5 of the parts' md5s>-<parts>"; a single PUT has the plain md5.
    assert _etag(s3_endpoint, s3_bucket, "task-big-a1.mp4").endswith("-2")
    assert storage.size("task-big-a1.mp4") == len(data)
    read_back = hashlib.sha256()
    for chunk in storage.read_range("task-big-a1.mp4", 0, len(data)):
        read_back.update(chunk)
    assert read_back.digest() == hashlib.sha256(data).digest()
    middle = 8 * MIB - 10  # across the parts' boundary
    assert b"".join(storage.read_range("task-big-a1.mp4", middle, middle + 20)) == data[middle : middle + 20]

    # A stream above the threshold goes in parts too.
    storage.put_stream("inputs/task-big/0.png", io.BytesIO(data[: 9 * MIB]))
    assert _etag(s3_endpoint, s3_bucket, "inputs/task-big/0.png").endswith("-2")


def test_a_file_below_the_threshold_is_one_put(s3_endpoint: str, s3_bucket: str, tmp_path: Path) -> None:
    storage = _storage(s3_endpoint, s3_bucket, multipart_threshold_bytes=8 * MIB)
    data = os.urandom(2 * MIB)
    source = tmp_path / "small.mp4"
    source.write_bytes(data)
    storage.put_file("task-small-a1.mp4", source)
    assert _etag(s3_endpoint, s3_bucket, "task-small-a1.mp4") == hashlib.md5(data).hexdigest()


def _expiry_of(url: str) -> int:
    """When SigV4 says a presigned URL dies: its signing time plus its validity, both inside the signature."""
    query = parse_qs(urlsplit(url).query)
    signed_at = datetime.strptime(query["X-Amz-Date"][0], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    return int(signed_at.timestamp()) + int(query["X-Amz-Expires"][0])


def test_a_presigned_link_downloads_the_object_until_its_expiry(s3_endpoint: str, s3_bucket: str) -> None:
    storage = _storage(s3_endpoint, s3_bucket, prefix="deploy", presigned=True)
    storage.put_stream("task-1-a1.mp4", io.BytesIO(b"the video"))
    expires_at = int(time.time()) + 3600
    url = storage.link("task-1-a1.mp4", expires_at=expires_at)
    assert url.startswith(f"{s3_endpoint}/{s3_bucket}/deploy/task-1-a1.mp4?")
    query = parse_qs(urlsplit(url).query)
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
    assert query["X-Amz-SignedHeaders"] == ["host"]
    answer = httpx.get(url)  # no credentials: the signature in the URL is the permission
    assert answer.status_code == 200
    assert answer.content == b"the video"
    assert answer.headers["content-type"] == "video/mp4"
    # moto serves a presigned URL whatever its age (it checks no presigned signature), so the expiry is shown
    # as S3 enforces it: the signing time plus X-Amz-Expires, both covered by the signature, equal to the
    # task's expiry (within the second the two clocks are read apart).
    assert abs(_expiry_of(url) - expires_at) <= 1
    later = storage.link("task-1-a1.mp4", expires_at=int(time.time()) + 60)
    assert abs(_expiry_of(later) - (int(time.time()) + 60)) <= 1


def test_a_presigned_link_asked_after_its_expiry_is_already_dead(s3_endpoint: str, s3_bucket: str) -> None:
    storage = _storage(s3_endpoint, s3_bucket, presigned=True)
    url = storage.link("task-1-a1.mp4", expires_at=int(time.time()) - 600)
    assert parse_qs(urlsplit(url).query)["X-Amz-Expires"] == ["1"]
    assert _expiry_of(url) <= int(time.time()) + 1


def test_a_presigned_link_cannot_outlive_what_sigv4_allows(s3_endpoint: str, s3_bucket: str, tmp_path: Path) -> None:
    storage = _storage(s3_endpoint, s3_bucket, presigned=True)
    with pytest.raises(ValueError, match="at most 604800 s"):
        storage.link("task-1-a1.mp4", expires_at=int(time.time()) + PRESIGNED_MAX_S + 3600)
    # ...which the settings refuse before anything is built.
    with pytest.raises(ValueError, match="REELGATE_RESULT_TTL_S=691200 is longer than the 7 days"):
        Settings(home=tmp_path, storage_url=f"s3://{s3_bucket}", result_ttl_s=8 * 24 * 3600)
    Settings(home=tmp_path, storage_url=f"s3://{s3_bucket}", result_ttl_s=8 * 24 * 3600, result_links="proxy")


def test_the_check_says_the_bucket_does_not_exist(s3_endpoint: str, aws_credentials: None) -> None:
    storage = _storage(s3_endpoint, "no-such-bucket-here")
    with pytest.raises(StorageUnavailable, match=r"^bucket no-such-bucket-here does not exist"):
        storage.check()


def test_the_check_says_the_credentials_are_refused(
    s3_endpoint: str, s3_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREVOKEDKEY000000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    storage = _storage(s3_endpoint, s3_bucket)
    storage.check()  # moto accepts any key until told to check them
    with enforce_credentials(s3_endpoint), pytest.raises(StorageUnavailable) as refused:
        storage.check()
    assert refused.value.reason == f"access to bucket {s3_bucket} is refused: check the AWS credentials"


def test_the_check_says_the_endpoint_cannot_be_reached(aws_credentials: None) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    storage = _storage(f"http://127.0.0.1:{port}", "some-bucket")
    with pytest.raises(StorageUnavailable, match=rf"^the S3 endpoint http://127.0.0.1:{port} cannot be reached"):
        storage.check()


def test_the_check_says_there_are_no_credentials(
    s3_endpoint: str, aws_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    with pytest.raises(StorageUnavailable, match=r"^no AWS credentials found"):
        _storage(s3_endpoint, "some-bucket").check()


def test_a_range_is_fetched_when_its_first_chunk_is_wanted(s3_endpoint: str, s3_bucket: str) -> None:
    # The files route builds its response on the event loop; the GET must wait for Starlette's threadpool.
    storage = _storage(s3_endpoint, s3_bucket)
    pending = storage.read_range("not-yet.mp4", 0, 5)
    storage.put_stream("not-yet.mp4", io.BytesIO(b"there now"))
    assert b"".join(pending) == b"there"
    missing = storage.read_range("never.mp4", 0, 5)
    with pytest.raises(ObjectMissing):
        next(missing)
