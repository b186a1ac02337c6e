"""Safaricom Daraja C2B validation and confirmation bodies into canonical transactions.

Daraja sends every field as a JSON string::

    {"TransactionType": "Pay Bill", "TransID": "RKL51ZDR4F", "TransTime": "20231121121325",
     "TransAmount": "5.00", "BusinessShortCode": "600966", "BillRefNumber": "...",
     "OrgAccountBalance": "25.00", "MSISDN": "2547 ***** 126", "FirstName": "NICHOLAS", ...}

``TransTime`` is ``YYYYMMDDHHmmss`` East Africa Time. ``MSISDN`` is plain (2017 sandbox),
SHA-256 hex (C2B v1) or masked (v2) and is kept exactly as received. A validation
request has the same shape with ``OrgAccountBalance`` blank.

The HTTP server calls :func:`parse_c2b_payload` on each request body; ``pesabridge parse
--format daraja-c2b`` reads a file holding one body (or a JSON array of bodies).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, BinaryIO, ClassVar

from ..errors import InvalidValue
from ..model import Counterparty, Direction, Entry, Status, Transaction, parse_amount
from ._callback import Bad as _Bad
from .base import Observation, ParseItem, Reject

PROVIDER = "mpesa"
CURRENCY = "KES"
_EAT_OFFSET = timedelta(hours=3)
# Fields kept as evidence in Transaction.extra (not part of the canonical JSON).
_EXTRA_FIELDS = ("TransactionType", "InvoiceNumber", "ThirdPartyTransID", "ThirdPartyTransId")


def _text(body: dict[str, Any], key: str, prefix: str) -> str | None:
    """A field as text; numbers are accepted (some relays send them), anything else is not."""
    value = body.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise _Bad(prefix + key, f"must be a string, not {type(value).__name__}")
    return repr(value) if isinstance(value, float) else str(value)


def _required(body: dict[str, Any], key: str, prefix: str) -> str:
    text = _text(body, key, prefix)
    if text is None:
        raise _Bad(prefix + key, "is missing")
    if not text.strip():
        raise _Bad(prefix + key, "is empty")
    return text


def _amount(text: str | None, path: str) -> Decimal | None:
    if text is None or not text.strip():
        return None  # only optional fields get here blank: required ones are checked first
    try:
        return parse_amount(text, path)
    except InvalidValue as exc:
        raise _Bad(path, exc.message) from None


def _trans_time(text: str, path: str) -> datetime:
    """``YYYYMMDDHHmmss`` in East Africa Time, as aware UTC."""
    digits = text.strip()
    if len(digits) != 14 or not (digits.isascii() and digits.isdigit()):
        raise _Bad(path, f"{text!r} is not a YYYYMMDDHHmmss time")
    try:
        local = datetime(
            int(digits[0:4]),
            int(digits[4:6]),
            int(digits[6:8]),
            int(digits[8:10]),
            int(digits[10:12]),
            int(digits[12:14]),
            tzinfo=UTC,
        )
        return local - _EAT_OFFSET
    except (ValueError, OverflowError):
        raise _Bad(path, f"{text!r} is not a valid YYYYMMDDHHmmss time") from None


def _name(body: dict[str, Any], prefix: str) -> str | None:
    parts = []
    for key in ("FirstName", "MiddleName", "LastName"):
        part = _text(body, key, prefix)
        if part and part.strip():
            parts.append(part.strip())
    return " ".join(parts) or None


def _transaction(body: dict[str, Any], prefix: str) -> Transaction:
    receipt = _required(body, "TransID", prefix)
    occurred_at = _trans_time(_required(body, "TransTime", prefix), prefix + "TransTime")
    amount = _amount(_required(body, "TransAmount", prefix), prefix + "TransAmount")
    if amount is None:  # _required refused blanks; this only narrows the type
        raise _Bad(prefix + "TransAmount", "is empty")
    balance = _amount(_text(body, "OrgAccountBalance", prefix), prefix + "OrgAccountBalance")
    account = _text(body, "BusinessShortCode", prefix)
    extra = {key: value for key in _EXTRA_FIELDS if (value := _text(body, key, prefix))}
    try:
        return Transaction(
            provider=PROVIDER,
            account=account.strip() or None if account else None,
            receipt=receipt.strip(),
            entry=Entry.PAYMENT,
            direction=Direction.CREDIT,
            amount=amount,
            currency=CURRENCY,
            occurred_at=occurred_at,
            counterparty=Counterparty.of(_text(body, "MSISDN", prefix), _name(body, prefix)),
            reference=_text(body, "BillRefNumber", prefix),
            balance_after=balance,
            status=Status.COMPLETED,
            extra=extra,
        )
    except InvalidValue as exc:
        path = {"amount": "TransAmount", "balance_after": "OrgAccountBalance"}.get(exc.field)
        raise _Bad(prefix + (path or exc.field), exc.message) from None


def _item(value: Any, source: str, raw: bytes, prefix: str) -> Observation | Reject:
    if not isinstance(value, dict):
        what = "is not a JSON object" if prefix else "the body is not a JSON object"
        return Reject(source, None, prefix.rstrip(".") or None, what, raw)
    try:
        return Observation(_transaction(value, prefix), source, None, raw)
    except _Bad as exc:
        return Reject(source, None, exc.path, exc.reason, raw)


def _load(body: bytes, source: str) -> Any | Reject:
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        reason = f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    except (ValueError, RecursionError) as exc:  # bad UTF-8, absurd nesting
        reason = f"not valid JSON: {exc}"
    return Reject(source, None, None, reason, body)


def parse_c2b_payload(body: bytes, source: str) -> Observation | Reject:
    """One C2B confirmation or validation request body, as received over HTTP.

    Never raises: a body that is not JSON, not an object, or has a field that cannot
    be read becomes a :class:`Reject` whose ``field`` is the JSON path (``TransAmount``)
    and whose ``raw`` is the body. ``source`` names the request (e.g. its request id).
    """
    data = _load(body, source)
    if isinstance(data, Reject):
        return data
    return _item(data, source, body, "")


class DarajaC2BParser:
    """``--format daraja-c2b``: a file holding one C2B body, or a JSON array of them."""

    name: ClassVar[str] = "daraja-c2b"

    def sniff(self, head: bytes, filename: str) -> bool:
        """A JSON object (or array of objects) with ``TransID`` and ``TransAmount``."""
        text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        return text[:1] in (b"{", b"[") and b'"TransID"' in head and b'"TransAmount"' in head

    def parse(self, stream: BinaryIO, source: str) -> Iterator[ParseItem]:
        """Yield one observation or reject per body in the file."""
        body = stream.read()
        if body.startswith(b"\xef\xbb\xbf"):
            body = body[3:]
        data = _load(body, source)
        if isinstance(data, Reject):
            yield data
        elif isinstance(data, list):
            for index, value in enumerate(data):
                raw = json.dumps(value, ensure_ascii=False).encode()
                yield _item(value, source, raw, f"[{index}].")
        else:
            yield _item(data, source, body, "")

    def parse_body(
        self, body: bytes, source: str, content_type: str | None = None
    ) -> list[ParseItem]:
        """One request body: ``[parse_c2b_payload(body, source)]``; never raises."""
        return [parse_c2b_payload(body, source)]
