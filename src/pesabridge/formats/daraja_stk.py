"""Safaricom Daraja M-Pesa Express (STK push) callbacks into canonical transactions.

Daraja posts the outcome of an STK push to the CallBackURL::

    {"Body": {"stkCallback": {"MerchantRequestID": "29115-34620561-1",
      "CheckoutRequestID": "ws_CO_191220191020363925", "ResultCode": 0,
      "ResultDesc": "The service request is processed successfully.",
      "CallbackMetadata": {"Item": [{"Name": "Amount", "Value": 1.00},
        {"Name": "MpesaReceiptNumber", "Value": "NLJ7RT61SV"},
        {"Name": "TransactionDate", "Value": 20191219102115},
        {"Name": "PhoneNumber", "Value": 254708374149}]}}}}

``ResultCode`` 0 is a payment received (one :class:`Observation`); any other code
(1032 cancelled by the user, 1037 timeout, 2001 wrong PIN ...) is a
:class:`FailedAttempt` whose ``request_id`` is the ``CheckoutRequestID``. Items are
matched by ``Name``, never by position; an item without ``Value`` (the ``Balance``
item of older callbacks) is absent. The callback does not carry the short code:
``account`` is null and the server fills it from its own configuration.
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..model import Counterparty, Direction, Entry, Status
from ._callback import (
    Bad,
    Failure,
    JsonCallbackParser,
    Mapped,
    amount,
    as_text,
    build,
    eat_compact,
    head_is_json,
    is_success,
    json_type,
    obj,
    result_code,
    text,
)

PROVIDER = "mpesa"
CURRENCY = "KES"


def _metadata(callback: dict[str, Any], prefix: str) -> dict[str, tuple[Any, str]]:
    """``Name`` -> (``Value``, its JSON path) for every item that has a value."""
    meta_path = prefix + "CallbackMetadata"
    meta = obj(callback, "CallbackMetadata", prefix)
    entries = meta.get("Item")
    item_path = meta_path + ".Item"
    if entries is None:
        raise Bad(item_path, "is missing")
    if isinstance(entries, dict):  # a single item sent as an object
        entries = [entries]
        paths = [item_path]
    elif isinstance(entries, list):
        paths = [f"{item_path}[{i}]" for i in range(len(entries))]
    else:
        raise Bad(item_path, f"must be an array of objects, not {json_type(entries)}")
    found: dict[str, tuple[Any, str]] = {}
    for entry, path in zip(entries, paths, strict=True):
        if not isinstance(entry, dict):
            raise Bad(path, f"must be an object, not {json_type(entry)}")
        name = as_text(entry.get("Name"), path + ".Name")
        if not name or not name.strip():
            raise Bad(path + ".Name", "is missing")
        if entry.get("Value") is None:
            continue  # {"Name": "Balance"}: named, no value
        if name.strip() in found:
            raise Bad(path + ".Name", f"{name.strip()!r} appears more than once")
        found[name.strip()] = (entry["Value"], path + ".Value")
    return found


def _need(found: dict[str, tuple[Any, str]], name: str, prefix: str) -> tuple[Any, str]:
    if name not in found:
        raise Bad(prefix + "CallbackMetadata.Item", f"has no {name!r} item with a Value")
    return found[name]


def map_stk(data: dict[str, Any], prefix: str) -> Mapped:
    """One decoded STK callback: a transaction, a failure, or :class:`Bad`."""
    body = obj(data, "Body", prefix)
    prefix += "Body."
    callback = obj(body, "stkCallback", prefix)
    prefix += "stkCallback."
    code = result_code(callback.get("ResultCode"), prefix + "ResultCode")
    checkout = text(callback, "CheckoutRequestID", prefix)
    description = text(callback, "ResultDesc", prefix)
    if not is_success(code):
        return [Failure(checkout, code, description or f"ResultCode {code}")]
    found = _metadata(callback, prefix)
    amount_value, amount_path = _need(found, "Amount", prefix)
    receipt_value, receipt_path = _need(found, "MpesaReceiptNumber", prefix)
    date_value, date_path = _need(found, "TransactionDate", prefix)
    receipt = as_text(receipt_value, receipt_path)
    if receipt is None or not receipt.strip():
        raise Bad(receipt_path, "is empty")
    phone: str | None = None
    if "PhoneNumber" in found:
        phone = as_text(*found["PhoneNumber"])
    extra = {
        key: value
        for key in ("MerchantRequestID", "CheckoutRequestID")
        if (value := text(callback, key, prefix))
    }
    return [
        build(
            {"amount": amount_path, "receipt": receipt_path, "occurred_at": date_path},
            provider=PROVIDER,
            account=None,
            receipt=receipt.strip(),
            entry=Entry.PAYMENT,
            direction=Direction.CREDIT,
            amount=amount(amount_value, amount_path),
            currency=CURRENCY,
            occurred_at=eat_compact(date_value, date_path),
            counterparty=Counterparty.of(phone, None),
            reference=None,
            balance_after=None,
            status=Status.COMPLETED,
            extra=extra,
        )
    ]


class DarajaSTKParser(JsonCallbackParser):
    """``--format daraja-stk``: M-Pesa Express callbacks (one body, or a JSON array)."""

    name: ClassVar[str] = "daraja-stk"
    provider: ClassVar[str] = PROVIDER

    def sniff(self, head: bytes, filename: str) -> bool:
        """JSON with an ``stkCallback`` key."""
        return head_is_json(head) and b'"stkCallback"' in head

    def _map(self, data: dict[str, Any], prefix: str) -> Mapped:
        return map_stk(data, prefix)
