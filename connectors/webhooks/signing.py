"""Standard Webhooks signatures: ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature`` headers.

The signature is ``v1,`` + base64(HMAC-SHA256(secret, ``f"{id}.{timestamp}.{body}"``)); the secret is written
``whsec_`` + base64 of its bytes. Receivers check the signature and reject timestamps more than five minutes
away from their clock (replays), and deduplicate deliveries by ``webhook-id``.

>>> secret = WebhookSecret.parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
>>> headers = sign_headers(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, b'{"test": 2432232314}')
>>> headers["webhook-signature"]
'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE='
>>> verify(secret, b'{"test": 2432232314}', headers, now=1614265330)
>>> verify(secret, b'{"test": 1}', headers, now=1614265330)
Traceback (most recent call last):
...
fusewatch.core.errors.SignatureError: no matching v1 signature
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as random_secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

from fusewatch.core.errors import SignatureError

PREFIX = "whsec_"
TOLERANCE_S = 300


@dataclass(frozen=True)
class WebhookSecret:
    """The key of one endpoint; its ``repr`` never shows the bytes."""

    key: bytes = field(repr=False)

    @classmethod
    def parse(cls, text: str) -> WebhookSecret:
        """``whsec_<base64>`` (or bare base64) → the key; a clear ``ValueError`` for anything else."""
        body = text[len(PREFIX):] if text.startswith(PREFIX) else text
        try:
            key = base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"a webhook secret is {PREFIX} followed by base64") from None
        if len(key) < 16:
            raise ValueError("a webhook secret needs at least 16 bytes (24 to 64 recommended)")
        return cls(key)

    @classmethod
    def generate(cls) -> WebhookSecret:
        """A new random 32-byte secret."""
        return cls(random_secrets.token_bytes(32))

    def __str__(self) -> str:
        return PREFIX + base64.b64encode(self.key).decode()


def signature(secret: WebhookSecret, webhook_id: str, timestamp: int, body: bytes) -> str:
    """The ``v1,<base64>`` signature of one delivery."""
    message = f"{webhook_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret.key, message, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign_headers(secret: WebhookSecret, webhook_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers of one delivery."""
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, webhook_id, timestamp, body),
    }


def verify(
    secret: WebhookSecret, body: bytes, headers: Mapping[str, str], now: int, tolerance_s: int = TOLERANCE_S
) -> None:
    """Check a delivery as a receiver would; :class:`SignatureError` says what is wrong."""
    lowered = {k.lower(): v for k, v in headers.items()}
    webhook_id, stamp, signatures = (lowered.get(h) for h in ("webhook-id", "webhook-timestamp", "webhook-signature"))
    if not (webhook_id and stamp and signatures):
        raise SignatureError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        timestamp = int(stamp)
    except ValueError:
        raise SignatureError(f"webhook-timestamp {stamp!r} is not an integer") from None
    if abs(now - timestamp) > tolerance_s:
        raise SignatureError(f"webhook-timestamp is {now - timestamp} s away from now (tolerance {tolerance_s} s)")
    expected = signature(secret, webhook_id, timestamp, body)
    if not any(hmac.compare_digest(expected, candidate) for candidate in signatures.split(" ")):
        raise SignatureError("no matching v1 signature")
