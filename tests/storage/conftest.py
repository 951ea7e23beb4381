"""S3 on loopback for the storage tests: one moto server per session, a fresh bucket per test, and the test's
AWS credentials in the environment of that test only (boto3 reads them through its standard chain, as a
deployment does)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.s3server import aws_environment, new_bucket, s3_server


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    with s3_server() as endpoint:
        yield endpoint


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set for this test, restored after it by monkeypatch."""
    for name, value in aws_environment().items():
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, value)


@pytest.fixture
def s3_bucket(s3_endpoint: str, aws_credentials: None) -> str:
    """An empty bucket of this test's own."""
    return new_bucket(s3_endpoint)
