"""Webhook signatures verify with an independent implementation (the `standardwebhooks` reference package)."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from connectors.webhooks.signing import WebhookSecret, sign_headers, verify
from fusewatch.core.errors import SignatureError


def test_our_signatures_verify_with_the_reference_implementation() -> None:
    secret = WebhookSecret.generate()
    body = json.dumps({"alert_id": "a1", "asset_id": "pump-01", "fused": 0.71}).encode()
    now = int(time.time())
    headers = sign_headers(secret, "msg_1", now, body)
    assert Webhook(str(secret)).verify(body, headers) == {"alert_id": "a1", "asset_id": "pump-01", "fused": 0.71}
    with pytest.raises(WebhookVerificationError):
        Webhook(str(secret)).verify(body.replace(b"0.71", b"0.99"), headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(str(WebhookSecret.generate())).verify(body, headers)


def test_reference_signatures_verify_with_ours() -> None:
    secret = WebhookSecret.generate()
    body = b'{"ok": true}'
    now = int(time.time())
    reference = Webhook(str(secret)).sign("msg_2", datetime.fromtimestamp(now, tz=UTC), body.decode())
    headers = {"Webhook-Id": "msg_2", "Webhook-Timestamp": str(now), "Webhook-Signature": f"v1,bogus {reference}"}
    verify(secret, body, headers, now=now)
    with pytest.raises(SignatureError, match="away from now"):
        verify(secret, body, headers, now=now + 301)
    with pytest.raises(SignatureError, match="missing"):
        verify(secret, body, {"webhook-id": "msg_2"}, now=now)


@pytest.mark.parametrize(("text", "problem"), [("whsec_!!!", "base64"), ("whsec_YWJj", "at least 16 bytes")])
def test_bad_secrets_are_refused_with_the_reason(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        WebhookSecret.parse(text)
    secret = WebhookSecret.generate()
    assert WebhookSecret.parse(str(secret)) == secret
    assert str(secret)[len("whsec_"):] not in repr(secret)  # the key never shows in logs
