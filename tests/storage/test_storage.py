"""Every `Storage` implementation behaves the same: whole objects or nothing, byte ranges, deletes, keys that
cannot escape, links the files route accepts, and a check that passes when the storage is usable. `s3` is a
real S3-protocol server on loopback (tests/s3server.py), with keys under a prefix as a deployment sets them."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from reelgate.storage.base import InvalidKey, ObjectMissing, Storage
from reelgate.storage.links import LinkSigner
from reelgate.storage.local import LocalStorage
from reelgate.storage.memory import MemoryStorage
from reelgate.storage.s3 import S3Storage
from tests.s3server import REGION

SIGNER = LinkSigner(b"k" * 32, "http://testserver")
DATA = bytes(range(256)) * 9000  # a little over 2 MiB: more than one read chunk


@pytest.fixture(params=["local", "memory", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Storage]:
    if request.param == "local":
        yield LocalStorage(tmp_path / "objects", SIGNER)
    elif request.param == "memory":
        yield MemoryStorage(SIGNER)
    else:
        # Asked for here only, so the local and memory runs never start the S3 server.
        endpoint: str = request.getfixturevalue("s3_endpoint")
        bucket: str = request.getfixturevalue("s3_bucket")
        yield S3Storage(
            bucket=bucket, prefix="deploy/one", links=SIGNER, presigned=False, endpoint_url=endpoint, region=REGION
        )


def _read(storage: Storage, key: str, start: int, stop: int) -> bytes:
    return b"".join(storage.read_range(key, start, stop))


def test_a_file_put_under_a_key_reads_back_whole_and_in_ranges(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "video.mp4"
    source.write_bytes(DATA)
    storage.put_file("task-1-a1.mp4", source)
    assert storage.exists("task-1-a1.mp4")
    assert storage.size("task-1-a1.mp4") == len(DATA)
    assert _read(storage, "task-1-a1.mp4", 0, len(DATA)) == DATA
    assert _read(storage, "task-1-a1.mp4", 100, 200) == DATA[100:200]
    assert _read(storage, "task-1-a1.mp4", len(DATA) - 5, len(DATA)) == DATA[-5:]
    assert _read(storage, "task-1-a1.mp4", 1_048_570, 1_048_590) == DATA[1_048_570:1_048_590]


def test_a_stream_is_stored_under_a_nested_key(storage: Storage) -> None:
    storage.put_stream("inputs/task-1/0.jpg", io.BytesIO(b"jpeg bytes"))
    assert storage.size("inputs/task-1/0.jpg") == 10
    assert _read(storage, "inputs/task-1/0.jpg", 0, 10) == b"jpeg bytes"
    storage.put_stream("inputs/task-1/0.jpg", io.BytesIO(b"replaced"))
    assert _read(storage, "inputs/task-1/0.jpg", 0, 8) == b"replaced"


def test_an_empty_object_has_size_zero_and_no_bytes(storage: Storage) -> None:
    storage.put_stream("empty.mp4", io.BytesIO(b""))
    assert storage.exists("empty.mp4")
    assert storage.size("empty.mp4") == 0
    assert _read(storage, "empty.mp4", 0, 0) == b""
    with pytest.raises(ObjectMissing):
        _read(storage, "never-stored.mp4", 0, 0)


def test_a_usable_storage_passes_its_check(storage: Storage) -> None:
    storage.check()


def test_delete_removes_and_a_missing_object_is_said_so(storage: Storage) -> None:
    storage.put_stream("gone.mp4", io.BytesIO(b"x"))
    storage.delete("gone.mp4")
    storage.delete("gone.mp4")  # deleting what is not there is no error
    assert not storage.exists("gone.mp4")
    with pytest.raises(ObjectMissing):
        storage.size("gone.mp4")
    with pytest.raises(ObjectMissing):
        _read(storage, "gone.mp4", 0, 1)


def test_keys_are_listed_under_a_prefix_in_order_after_a_start(storage: Storage) -> None:
    stored = ["inputs/task-2/0.jpeg", "inputs/task-1/1.png", "inputs/task-1/0.jpeg", "task-1-a1.mp4", "inputs.mp4"]
    for key in stored:
        storage.put_stream(key, io.BytesIO(b"x"))
    if isinstance(storage, LocalStorage):  # a write in progress is no object
        (storage.root / "inputs" / "task-3").mkdir()
        (storage.root / "inputs" / "task-3" / ".0.jpeg.1234abcd.part").write_bytes(b"half")
    if isinstance(storage, S3Storage):  # nor is another deployment's object in the same bucket
        storage.client.put_object(Bucket=storage.bucket, Key="deploy/one-more/inputs/task-9/0.jpeg", Body=b"x")
    assert list(storage.list_keys("inputs/")) == ["inputs/task-1/0.jpeg", "inputs/task-1/1.png", "inputs/task-2/0.jpeg"]
    assert list(storage.list_keys("inputs/task-1")) == ["inputs/task-1/0.jpeg", "inputs/task-1/1.png"]
    assert list(storage.list_keys("inputs/", start_after="inputs/task-1/0.jpeg")) == [
        "inputs/task-1/1.png",
        "inputs/task-2/0.jpeg",
    ]
    assert list(storage.list_keys("inputs/", start_after="inputs/task-1~")) == ["inputs/task-2/0.jpeg"]
    assert list(storage.list_keys("")) == sorted(stored)
    assert list(storage.list_keys("nothing/")) == []
    for bad in ("../", "inputs//", "/inputs/"):
        with pytest.raises(InvalidKey):
            list(storage.list_keys(bad))


@pytest.mark.parametrize("key", ["../secret_key", "a/../../b.mp4", "/etc/passwd", ".hidden.mp4", "A.MP4", "", "a//b"])
def test_keys_cannot_escape_or_surprise(storage: Storage, key: str) -> None:
    with pytest.raises(InvalidKey):
        storage.exists(key)
    with pytest.raises(InvalidKey):
        storage.put_stream(key, io.BytesIO(b"x"))


def test_links_are_signed_for_the_files_route(storage: Storage) -> None:
    url = urlsplit(storage.link("task-1-a1.mp4", expires_at=2_000_000_000))
    assert url.path == "/v1/files/task-1-a1.mp4"
    query = parse_qs(url.query)
    assert query["expires"] == ["2000000000"]
    assert SIGNER.is_valid(
        "task-1-a1.mp4", expires_at=2_000_000_000, signature=query["signature"][0], now=1_900_000_000
    )


def test_local_storage_never_shows_a_half_written_file(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "objects", SIGNER)

    class Failing(io.RawIOBase):
        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            raise OSError("disk gone")

    with pytest.raises(OSError):
        storage.put_stream("half.mp4", io.BufferedReader(Failing()))
    assert not storage.exists("half.mp4")
    assert list((tmp_path / "objects").iterdir()) == []
