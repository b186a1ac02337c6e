"""Canonical JSON: the transaction exactly as ``parse`` prints it, plus delivery metadata."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any, ClassVar

import orjson

from ..model import Transaction
from .base import EncodeError, MessageContext


def _compact(document: dict[str, Any], txn: Transaction) -> bytes:
    """``document`` as compact UTF-8 JSON: the bytes ``json.dumps(document,
    separators=(",", ":"), ensure_ascii=False).encode()`` writes (the tests hold the two
    to the same output), made by orjson about ten times faster. Every delivery's body
    is made here, and the standard library's encoder was the largest part of that."""
    try:
        return orjson.dumps(document)
    except orjson.JSONEncodeError as exc:
        # Text that is not valid Unicode (a lone surrogate) has no UTF-8 form.
        raise EncodeError(f"not encodable as JSON: {exc}", receipt=txn.receipt) from None


def canonical_json(txn: Transaction, *, idempotency_key: str) -> bytes:
    """The body the HTTP sink posts by default.

    The transaction's fields at the top level (amounts as decimal strings, times in UTC)
    and ``idempotency_key``, which is also sent as the ``Idempotency-Key`` header.
    """
    return _compact({"idempotency_key": idempotency_key, **txn.to_dict()}, txn)


def transaction_json(txn: Transaction) -> bytes:
    """The transaction alone, compact, exactly the ``parse`` contract (no delivery data)."""
    return _compact(txn.to_dict(), txn)


SCHEMA_RESOURCE = "schemas/transaction.schema.json"
"""The canonical JSON's JSON Schema, shipped in the package (``schema()`` reads it)."""


def schema() -> dict[str, Any]:
    """The JSON Schema every ``parse`` line and every ``json`` encoder output satisfies."""
    text = (resources.files(__package__) / SCHEMA_RESOURCE).read_text(encoding="utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


class JsonEncoder:
    """Canonical JSON per transaction: :func:`canonical_json` when the context carries an
    idempotency key (what the HTTP sink posts), else the bare ``parse`` object, so
    ``transform --to json`` output is JSON Lines the ``jsonl`` format reads back."""

    name: ClassVar[str] = "json"
    media_type: ClassVar[str] = "application/json"

    def __init__(self, **options: Any) -> None:
        if options:
            from .options import problem

            raise problem(f"the json encoder takes no options (given: {', '.join(options)})")

    def encode(self, txn: Transaction, context: MessageContext) -> bytes:
        if context.idempotency_key:
            return canonical_json(txn, idempotency_key=context.idempotency_key)
        return transaction_json(txn)
