"""Signing and the rotation window, checked with the reference `standardwebhooks` verifier."""

from __future__ import annotations

import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from reelgate.db.models import WebhookSecret
from reelgate.webhooks.delivery import classify_status
from reelgate.webhooks.repository import signing_secrets
from reelgate.webhooks.signing import generate_secret, signature_headers
from reelgate.webhooks.states import ErrorKind


def test_secrets_are_standard_and_distinct() -> None:
    made = {generate_secret() for _ in range(50)}
    assert len(made) == 50
    assert all(secret.startswith("whsec_") for secret in made)
    Webhook(next(iter(made)))  # parses as a Standard Webhooks secret


def test_each_secret_adds_a_signature_that_verifies_alone() -> None:
    old, new = generate_secret(), generate_secret()
    body = '{"id": "task-unified-1-abcdefgh", "status": "completed"}'
    headers = signature_headers(webhook_id="msg_1", timestamp_s=int(time.time()), body=body, signing_secrets=[new, old])
    assert headers["webhook-id"] == "msg_1"
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        assert Webhook(secret).verify(body, headers)["status"] == "completed"
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(body, headers)
    with pytest.raises(WebhookVerificationError):  # the id is signed too
        Webhook(new).verify(body, {**headers, "webhook-id": "msg_2"})
    with pytest.raises(ValueError):
        signature_headers(webhook_id="msg_1", timestamp_s=0, body=body, signing_secrets=[])


def test_the_previous_secret_signs_only_until_its_overlap_ends() -> None:
    row = WebhookSecret(
        api_key_id="k", current_secret="whsec_new", previous_secret="whsec_old", previous_valid_until=100.0
    )
    assert signing_secrets(row, now=99.0) == ["whsec_new", "whsec_old"]
    assert signing_secrets(row, now=100.0) == ["whsec_new"]
    row.previous_secret = None
    assert signing_secrets(row, now=0.0) == ["whsec_new"]


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (200, None),
        (204, None),
        (299, None),
        (301, ErrorKind.REDIRECT),
        (304, ErrorKind.REDIRECT),
        (308, ErrorKind.REDIRECT),
        (400, ErrorKind.HTTP_STATUS),
        (500, ErrorKind.HTTP_STATUS),
        (101, ErrorKind.HTTP_STATUS),
    ],
)
def test_only_2xx_is_success(status: int, kind: ErrorKind | None) -> None:
    assert classify_status(status) == kind
