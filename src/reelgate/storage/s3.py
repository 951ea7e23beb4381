"""Objects in S3-compatible object storage (AWS S3, MinIO, Cloudflare R2, Ceph RGW, ...) through boto3.

A PUT, single or multipart, becomes visible only once it is complete, so a reader never sees half an object,
the protocol's promise, without staging. Credentials come only from boto3's standard chain (environment,
shared profiles, instance and task roles): no setting of ours holds them.
"""

from __future__ import annotations

import mimetypes
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

import boto3
from boto3.s3.transfer import TransferConfig
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as EndpointUnreachable

from reelgate.config import PRESIGNED_MAX_S
from reelgate.storage.base import CHUNK_BYTES, ObjectMissing, StorageUnavailable, check_key, check_prefix
from reelgate.storage.links import LinkSigner

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Threads of one upload that send its parts at once (boto3's transfer manager).
TRANSFER_THREADS = 8
# Every caller reaches storage from a thread of its own, and all of them may hold a connection at once:
# asyncio's default executor (at most 32 threads: jobs' uploads, the sweep, the files route's size check),
# Starlette's threadpool that streams ranged downloads (40 threads), and the part threads of four multipart
# uploads at once. Past the pool, urllib3 still connects but throws the connection away after one request.
POOL_CONNECTIONS = 32 + 40 + 4 * TRANSFER_THREADS


class S3Storage:
    """One boto3 client per storage: clients are thread-safe (sessions are not), so the threads above share
    it and its connection pool."""

    def __init__(
        self,
        *,
        bucket: str,
        prefix: str,
        links: LinkSigner,
        presigned: bool,
        endpoint_url: str = "",
        region: str = "",
        multipart_threshold_bytes: int = 8 * 1024 * 1024,
    ) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.links = links
        self.presigned = presigned
        # botocore's default CRC checksums (and aws-chunked uploads) are refused by several S3-compatible stores
        # (older MinIO, Ceph RGW); AWS itself keeps them.
        checksums: Literal["when_supported", "when_required"] = "when_required" if endpoint_url else "when_supported"
        config = Config(
            # Presigned URLs default to the legacy SigV2 in botocore; SigV4 is what every store accepts today.
            signature_version="s3v4",
            max_pool_connections=POOL_CONNECTIONS,
            # An unreachable endpoint must fail the start and /readyz in seconds, not after a minute per try.
            connect_timeout=5,
            retries={"mode": "standard", "max_attempts": 3},
            request_checksum_calculation=checksums,
            response_checksum_validation=checksums,
        )
        # A session of its own: boto3's default session is module state, shared by whoever else imports boto3.
        session = boto3.session.Session()
        self.client: S3Client = session.client(
            "s3", endpoint_url=endpoint_url or None, region_name=region or None, config=config
        )
        self._transfer = TransferConfig(multipart_threshold=multipart_threshold_bytes, max_concurrency=TRANSFER_THREADS)

    def object_key(self, key: str) -> str:
        """The bucket's key of one of our keys: under the URL's prefix."""
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def put_file(self, key: str, source: Path) -> None:
        # The transfer manager goes multipart above the threshold: parts in parallel, each retried alone, and
        # the object appears only when the upload completes (an aborted one leaves no object).
        self.client.upload_file(
            str(source), self.bucket, self.object_key(key), ExtraArgs=_content_type(key), Config=self._transfer
        )
        source.unlink()

    def put_stream(self, key: str, source: BinaryIO) -> None:
        self.client.upload_fileobj(
            source, self.bucket, self.object_key(key), ExtraArgs=_content_type(key), Config=self._transfer
        )

    def size(self, key: str) -> int:
        try:
            return self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))["ContentLength"]
        except ClientError as exc:
            if _is_missing(exc):
                raise ObjectMissing(key) from None
            raise

    def read_range(self, key: str, start: int, stop: int) -> Iterator[bytes]:
        return self._ranged(key, self.object_key(key), start, stop)

    def _ranged(self, key: str, object_key: str, start: int, stop: int) -> Iterator[bytes]:
        # A generator: nothing is asked of S3 before the first chunk is wanted. The files route builds its
        # response on the event loop and Starlette pulls the chunks in its threadpool, so the GET (and a
        # missing object's ObjectMissing) happens there, never blocking the loop.
        if stop <= start:
            self.size(key)  # an empty range still says whether the object is there
            return
        try:
            response = self.client.get_object(Bucket=self.bucket, Key=object_key, Range=f"bytes={start}-{stop - 1}")
        except ClientError as exc:
            if _is_missing(exc):
                raise ObjectMissing(key) from None
            raise
        body = response["Body"]
        try:
            yield from body.iter_chunks(CHUNK_BYTES)
        finally:
            # Back to the pool (or closed) even when the reader stops early: a client that hangs up mid-video.
            body.close()

    def exists(self, key: str) -> bool:
        try:
            self.client.head_object(Bucket=self.bucket, Key=self.object_key(key))
        except ClientError as exc:
            if _is_missing(exc):
                return False
            raise
        return True

    def delete(self, key: str) -> None:
        # S3 answers 204 for a key that is not there: deleting twice is no error, as the protocol wants.
        self.client.delete_object(Bucket=self.bucket, Key=self.object_key(key))

    def list_keys(self, prefix: str, *, start_after: str = "") -> Iterator[str]:
        check_prefix(prefix)
        # ListObjectsV2 answers in ascending key order, a thousand a page; our prefix is stripped again.
        own = f"{self.prefix}/" if self.prefix else ""
        arguments: dict[str, str] = {"Bucket": self.bucket, "Prefix": own + prefix}
        if start_after:
            arguments["StartAfter"] = own + start_after
        for page in self.client.get_paginator("list_objects_v2").paginate(**arguments):  # type: ignore[arg-type]
            for item in page.get("Contents", []):
                yield item["Key"][len(own) :]

    def link(self, key: str, *, expires_at: int) -> str:
        if not self.presigned:
            # Proxy: our own signed link; the files route streams the object from the bucket, with Range.
            return self.links.url_for(check_key(key), expires_at=expires_at)
        expires_in = expires_at - int(time.time())
        if expires_in > PRESIGNED_MAX_S:
            # Settings refuse a result TTL this long with presigned links; this guards any other caller.
            raise ValueError(f"a presigned S3 link lives at most {PRESIGNED_MAX_S} s, not {expires_in} s")
        return self.client.generate_presigned_url(
            "get_object",
            Params={"Bucket": self.bucket, "Key": self.object_key(key)},
            # A link asked for after its expiry (a late callback) still gets a valid, already-dead URL.
            ExpiresIn=max(1, expires_in),
        )

    def upload_link(self, key: str, *, expires_at: int) -> str | None:
        if not self.presigned:
            return None  # the bucket stays private to the network: uploads go through the API
        return self.client.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.bucket, "Key": self.object_key(check_key(key)), **_content_type(key)},
            ExpiresIn=max(1, min(PRESIGNED_MAX_S, expires_at - int(time.time()))),
        )

    def check(self) -> None:
        endpoint = self.client.meta.endpoint_url
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            code = exc.response.get("Error", {}).get("Code", "")
            if status == 404 or code == "NoSuchBucket":
                raise StorageUnavailable(f"bucket {self.bucket} does not exist") from None
            if status == 403:
                raise StorageUnavailable(
                    f"access to bucket {self.bucket} is refused: check the AWS credentials"
                ) from None
            raise StorageUnavailable(f"bucket {self.bucket} at {endpoint} answered {status} {code}") from None
        except NoCredentialsError:
            raise StorageUnavailable(
                "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile "
                "(AWS_PROFILE) or an instance role"
            ) from None
        except EndpointUnreachable as exc:
            raise StorageUnavailable(f"the S3 endpoint {endpoint} cannot be reached: {exc}") from None
        except HTTPClientError as exc:
            raise StorageUnavailable(f"the S3 endpoint {endpoint} did not answer: {exc}") from None
        except BotoCoreError as exc:
            raise StorageUnavailable(f"S3 at {endpoint}: {exc}") from None


def _is_missing(exc: ClientError) -> bool:
    # HEAD answers have no body, so a missing key there is only the status: 404 (as is a missing bucket, which
    # check() tells apart at start).
    code = exc.response.get("Error", {}).get("Code", "")
    return code in ("404", "NoSuchKey", "NotFound")


def _content_type(key: str) -> dict[str, str]:
    # Stored with the object, so a presigned download is served as video/mp4, not as bytes.
    return {"ContentType": mimetypes.guess_type(key)[0] or "application/octet-stream"}
