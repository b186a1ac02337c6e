"""JSON Lines of canonical transactions: what ``pesabridge parse`` prints, read back.

One JSON object per line, with exactly the keys of the ``parse`` contract::

    {"provider": "mpesa", "account": "600977", "receipt": "SE66U9V1W2", "entry": "payment",
     "direction": "credit", "amount": "250.00", "currency": "KES",
     "occurred_at": "2024-05-06T18:05:59Z", "counterparty": {"msisdn": "25471****234",
     "msisdn_kind": "masked", "name": "GRACE **** WANJIRU"}, "reference": "00451",
     "balance_after": "13000.00", "status": "completed", "related_receipt": null}

so the output of ``parse`` (of any format) can be kept, edited, moved and ingested again.
Blank lines are skipped; a line that is not such an object is rejected with the JSON
path of the bad value, and the other lines still come out. Lines are decoded one at a
time (UTF-8 with or without BOM; bytes that are not UTF-8 are read as cp1252), so memory
stays constant however long the file is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any, BinaryIO, ClassVar

from ..errors import InvalidValue
from ..model import Transaction
from ._text import UTF8_OR_CP1252
from .base import Observation, ParseItem, Reject

_KEYS = frozenset(
    (
        "provider",
        "account",
        "receipt",
        "entry",
        "direction",
        "amount",
        "currency",
        "occurred_at",
        "counterparty",
        "reference",
        "balance_after",
        "status",
        "related_receipt",
    )
)
_COUNTERPARTY_KEYS = frozenset(("msisdn", "msisdn_kind", "name"))
_BOM = b"\xef\xbb\xbf"


def _load(text: str) -> Any:
    # Numbers become Decimal (never float) so an amount written as 250.10 stays exact.
    return json.loads(text, parse_float=Decimal)


def _unknown_key(data: dict[str, Any]) -> str | None:
    """The path of the first key the contract does not have, if any."""
    for key in data:
        if key not in _KEYS:
            return key
    counterparty = data.get("counterparty")
    if isinstance(counterparty, dict):
        for key in counterparty:
            if key not in _COUNTERPARTY_KEYS:
                return f"counterparty.{key}"
    return None


def read_line(raw: bytes, source: str, line: int) -> Observation | Reject:
    """One non-blank line (without its line end) as an observation or a reject."""
    text = raw.decode("utf-8", errors=UTF8_OR_CP1252)
    try:
        data = _load(text)
    except json.JSONDecodeError as exc:
        return Reject(source, line, None, f"not valid JSON: {exc.msg} at column {exc.colno}", raw)
    except (ValueError, RecursionError) as exc:  # absurd nesting, huge numbers
        return Reject(source, line, None, f"not valid JSON: {exc}", raw)
    if not isinstance(data, dict):
        kind = "an array" if isinstance(data, list) else "not a JSON object"
        return Reject(
            source, line, None, f"is {kind}; each line must be one transaction object", raw
        )
    unknown = _unknown_key(data)
    if unknown is not None:
        return Reject(source, line, unknown, "is not a field of the canonical transaction", raw)
    try:
        transaction = Transaction.from_dict(data)
    except InvalidValue as exc:
        return Reject(source, line, exc.field, exc.message, raw)
    return Observation(transaction, source, line, raw)


class JsonLinesParser:
    """Canonical transactions as JSON Lines (see the module docstring)."""

    name: ClassVar[str] = "jsonl"

    def sniff(self, head: bytes, filename: str) -> bool:
        """The first non-blank line is a JSON object with ``receipt`` and ``amount`` keys."""
        if head.startswith(_BOM):
            head = head[len(_BOM) :]
        for raw in head.split(b"\n"):
            if not raw.strip():
                continue
            try:
                data = _load(raw.decode("utf-8", errors=UTF8_OR_CP1252))
            except (ValueError, RecursionError):
                return False  # not JSON, or a first line longer than the head
            return isinstance(data, dict) and "receipt" in data and "amount" in data
        return False

    def parse(self, stream: BinaryIO, source: str) -> Iterator[ParseItem]:
        """Yield one observation or reject per non-blank line."""
        for line, raw in enumerate(stream, start=1):
            if line == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            raw = raw.rstrip(b"\r\n")
            if not raw.strip():
                continue
            yield read_line(raw, source, line)
