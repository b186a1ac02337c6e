"""Canonical JSON: the transaction exactly as ``parse`` prints it, plus delivery metadata."""

from __future__ import annotations

import json

from ..model import Transaction


def canonical_json(txn: Transaction, *, idempotency_key: str) -> bytes:
    """The body the HTTP sink posts by default.

    The transaction's fields at the top level (amounts as decimal strings, times in UTC)
    and ``idempotency_key``, which is also sent as the ``Idempotency-Key`` header.
    """
    body = {"idempotency_key": idempotency_key, **txn.to_dict()}
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
