"""Standard Webhooks request signatures (``webhook-id``, ``webhook-timestamp``,
``webhook-signature``) for the HTTP sink."""

from __future__ import annotations

import base64
import hashlib
import hmac


def webhook_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (``whsec_`` + base64)."""
    encoded = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(encoded, validate=True)
    except ValueError:
        raise ValueError("a signing secret must be whsec_ followed by base64") from None


def webhook_signature(keys: list[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: ``v1,<base64>`` per key, space-separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for key in keys
    )
