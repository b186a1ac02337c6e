"""Signature schemes of the providers that sign their callbacks.

Every scheme is computed over the bytes as received (re-serialising JSON changes them)
and compared in constant time against each configured key in turn, so a key can be
rotated by listing the new one beside the old for a while.

- ``kopokopo``: ``X-KopoKopo-Signature`` = lowercase hex HMAC-SHA256 of the raw body.
- ``kopokopo-legacy``: field ``signature`` = Base64 HMAC-SHA1 of every other field,
  URL-decoded, sorted by key, joined ``k=v`` with ``&`` (form or JSON body).
- ``airtel``: field ``hash`` = Base64 HMAC-SHA256 of the ``transaction`` object written
  as compact JSON (a decision: Airtel does not publish a key or a vector to check it
  against; verified only when keys are configured).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping, Sequence
from enum import Enum
from typing import Any
from urllib.parse import parse_qsl

from .security import same


class Verdict(Enum):
    GOOD = "good"
    BAD = "bad"
    MISSING = "missing"


Verifier = Callable[[bytes, Mapping[str, str], Sequence[bytes]], Verdict]


def _any_key(keys: Sequence[bytes], given: bytes, compute: Callable[[bytes], bytes]) -> Verdict:
    good = False
    for key in keys:  # every key is tried, whatever matched: no early exit
        good |= same(given, compute(key))
    return Verdict.GOOD if good else Verdict.BAD


def k2_signature(body: bytes, key: bytes) -> str:
    """Kopo Kopo K2 Connect: lowercase hex HMAC-SHA256 of the raw body."""
    return hmac.new(key, body, hashlib.sha256).hexdigest()


def verify_k2(body: bytes, headers: Mapping[str, str], keys: Sequence[bytes]) -> Verdict:
    given = headers.get("x-kopokopo-signature", "").strip().lower()
    if not given:
        return Verdict.MISSING
    return _any_key(keys, given.encode(), lambda key: k2_signature(body, key).encode())


def legacy_fields(body: bytes, content_type: str | None) -> dict[str, str] | None:
    """The fields of a legacy Kopo Kopo notification (form or JSON), or None."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if (content_type or "").split(";")[0].strip().lower() == "application/json" or (
        text.lstrip().startswith("{")
    ):
        try:
            data: Any = json.loads(text)
        except ValueError:
            return None
        if not isinstance(data, dict):
            return None
        return {str(k): _json_text(v) for k, v in data.items()}
    try:
        return dict(parse_qsl(text, keep_blank_values=True, strict_parsing=True))
    except ValueError:
        return None


def _json_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def legacy_base_string(fields: Mapping[str, str]) -> str:
    """Every field but ``signature``, sorted by key, ``k=v`` joined with ``&``."""
    return "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "signature")


def legacy_signature(fields: Mapping[str, str], key: bytes) -> str:
    """Legacy Kopo Kopo: Base64 HMAC-SHA1 of the base string."""
    digest = hmac.new(key, legacy_base_string(fields).encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def verify_legacy(body: bytes, headers: Mapping[str, str], keys: Sequence[bytes]) -> Verdict:
    fields = legacy_fields(body, headers.get("content-type"))
    if fields is None:
        return Verdict.BAD
    given = fields.get("signature", "").strip()
    if not given:
        return Verdict.MISSING
    return _any_key(keys, given.encode(), lambda key: legacy_signature(fields, key).encode())


def airtel_hash(transaction: Any, key: bytes) -> str:
    """Airtel (decision, see the module docs): Base64 HMAC-SHA256 of compact JSON."""
    message = json.dumps(transaction, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.b64encode(hmac.new(key, message, hashlib.sha256).digest()).decode()


def verify_airtel(body: bytes, headers: Mapping[str, str], keys: Sequence[bytes]) -> Verdict:
    try:
        data = json.loads(body)
    except ValueError:
        return Verdict.BAD
    if not isinstance(data, dict):
        return Verdict.BAD
    given = data.get("hash")
    if not isinstance(given, str) or not given.strip():
        return Verdict.MISSING
    transaction = data.get("transaction")
    return _any_key(
        keys, given.strip().encode(), lambda key: airtel_hash(transaction, key).encode()
    )
