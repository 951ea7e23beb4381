"""A real S3-protocol server on loopback for the tests: moto's standalone server, which boto3 talks to over HTTP
exactly as to AWS S3 or MinIO. Fixtures over it are in tests/storage/conftest.py; a test elsewhere (a soak with
processes) can start one with `s3_server()` and hand its endpoint to the processes it spawns.

moto checks credentials only when told to (`enforce_credentials`), and never the expiry of a presigned URL.
"""

from __future__ import annotations

import functools
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import httpx
from botocore.config import Config

# What the test processes and clients sign with. moto accepts any key until credentials are enforced.
TEST_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "reelgate-test",
    "AWS_SECRET_ACCESS_KEY": "reelgate-test-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
REGION = TEST_CREDENTIALS["AWS_DEFAULT_REGION"]
# Variables of boto3's chain that could make a test read a developer's real AWS setup (or wait on an instance
# metadata service that is not there).
_ISOLATION = {
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
_CLEARED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3")


@contextmanager
def s3_server() -> Iterator[str]:
    """moto's server on a free loopback port; yields its endpoint URL."""
    from moto.server import ThreadedMotoServer

    # One line per request on stderr otherwise.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def aws_environment(credentials: dict[str, str] | None = None) -> dict[str, str | None]:
    """What the environment of an S3 test (or of a process it spawns) must hold: the test's credentials and
    nothing of the machine's own AWS setup. None = unset the variable."""
    env: dict[str, str | None] = {**_ISOLATION, **(credentials or TEST_CREDENTIALS)}
    env.update(dict.fromkeys(_CLEARED))
    return env


@functools.cache
def admin_client(endpoint: str) -> Any:
    """A plain boto3 client for what the tests arrange and inspect behind the storage's back (one per server:
    building a client takes a good part of a second)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=TEST_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=TEST_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        config=Config(signature_version="s3v4"),
    )


def new_bucket(endpoint: str) -> str:
    name = f"reelgate-{uuid.uuid4().hex[:16]}"
    admin_client(endpoint).create_bucket(Bucket=name)
    return name


def bucket_keys(endpoint: str, bucket: str) -> list[str]:
    listed = admin_client(endpoint).list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


def delete_bucket(endpoint: str, bucket: str) -> None:
    client = admin_client(endpoint)
    for key in bucket_keys(endpoint, bucket):
        client.delete_object(Bucket=bucket, Key=key)
    client.delete_bucket(Bucket=bucket)


@contextmanager
def enforce_credentials(endpoint: str) -> Iterator[None]:
    """While inside, moto checks every request's access key and signature against its IAM (which knows no
    keys, so every key is refused with 403), as AWS does; outside, it accepts any. A switch of the server
    (`/moto-api/reset-auth`), so no other test may run against it meanwhile (the suite runs serially)."""
    previous = httpx.post(f"{endpoint}/moto-api/reset-auth", content=b"0").json()
    try:
        yield
    finally:
        httpx.post(
            f"{endpoint}/moto-api/reset-auth", content=previous["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"].encode()
        )
