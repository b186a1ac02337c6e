"""Kopo Kopo callbacks into canonical transactions: K2 Connect webhooks and the legacy push API.

**K2 Connect webhooks** (``kopokopo-webhook``) post one event::

    {"topic": "buygoods_transaction_received", "id": "...", "created_at": "...+03:00",
     "event": {"type": "Buygoods Transaction", "resource": {"reference": "SE56P4TX8R",
       "amount": "2350.0", "currency": "KES", "till_number": "512345",
       "origination_time": "2024-05-06T14:05:10+03:00", "sender_phone_number": "+254722000555",
       "hashed_sender_phone": "3091...", "sender_first_name": "Daniel", ...}}, "_links": {...}}

``buygoods_transaction_received``, ``b2b_transaction_received`` and
``m2m_transaction_received`` are payments (credit); ``buygoods_transaction_reversed`` is a
reversal (debit) whose receipt and ``related_receipt`` are both the original
``reference`` (K2 gives the reversal no receipt of its own); ``settlement_transfer_completed``
is a settlement (debit), one per entry of ``disbursements`` when the resource lists them;
``customer_created`` moves no money and yields nothing. Any other topic is a reject.

The same endpoint may receive K2's *Daraja-format relay*: a C2B confirmation body
(``TransID``, ``TransAmount``, ``MSISDN`` as an opaque hash, ``ThirdPartyTransID`` or
``ThirdPartyTransId``). It is mapped as ``daraja-c2b`` is, with provider ``kopokopo``.

**Legacy push API** (``kopokopo-legacy``, 2012-2017) posts form fields
(``application/x-www-form-urlencoded``) or the same fields as a JSON object:
``transaction_reference``, ``business_number``, ``amount``, ``currency``,
``transaction_timestamp`` (UTC), ``sender_phone``, ``first_name`` ... ``account_number``
and ``signature``. The signature is verified by the endpoint over the raw body; it is
never part of the transaction.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar
from urllib.parse import parse_qsl

from ..model import Counterparty, Direction, Entry, MsisdnKind, Status, Transaction
from ._callback import (
    Bad,
    JsonCallbackParser,
    Mapped,
    amount,
    build,
    head_is_json,
    iso_time,
    join_name,
    json_type,
    load_json,
    obj,
    required,
    text,
)
from ._text import UTF8_OR_CP1252
from .base import Reject
from .daraja_c2b import _transaction as _c2b_transaction

PROVIDER = "kopokopo"
CURRENCY = "KES"
_RECEIVED = (
    "buygoods_transaction_received",
    "b2b_transaction_received",
    "m2m_transaction_received",
)
_REVERSED = ("buygoods_transaction_reversed",)
_SETTLED = ("settlement_transfer_completed",)
_NO_MONEY = ("customer_created",)
# Legacy fields kept as evidence in Transaction.extra; `signature` is deliberately absent.
_LEGACY_EXTRA = ("internal_transaction_id", "transaction_type", "service_name")


def _sender(resource: dict[str, Any], prefix: str) -> Counterparty | None:
    """The payer: a plain number when K2 sends one, else its hash as an opaque id."""
    name = join_name(
        text(resource, "sender_first_name", prefix),
        text(resource, "sender_middle_name", prefix),
        text(resource, "sender_last_name", prefix),
    ) or text(resource, "sending_merchant", prefix)
    phone = text(resource, "sender_phone_number", prefix) or text(resource, "sender_msisdn", prefix)
    if phone is None and (hashed := text(resource, "hashed_sender_phone", prefix)):
        return Counterparty(hashed.strip(), MsisdnKind.HASHED, name)
    return Counterparty.of(phone, name)


def _k2_movement(
    resource: dict[str, Any],
    prefix: str,
    *,
    entry: Entry,
    direction: Direction,
    extra: dict[str, str],
    receipt_key: str = "reference",
    time_keys: tuple[str, ...] = ("origination_time",),
    counterparty: bool = True,
    account: str | None = None,
) -> Transaction:
    receipt = required(resource, receipt_key, prefix)
    time_key = next((k for k in time_keys if resource.get(k) is not None), time_keys[0])
    related = receipt if entry is Entry.REVERSAL else None
    for key in ("sending_till", "system", "id"):
        if value := text(resource, key, prefix):
            extra = {**extra, f"resource.{key}": value}
    return build(
        {
            "amount": prefix + "amount",
            "currency": prefix + "currency",
            "occurred_at": prefix + time_key,
            "receipt": prefix + receipt_key,
        },
        provider=PROVIDER,
        account=text(resource, "till_number", prefix) or account,
        receipt=receipt,
        entry=entry,
        direction=direction,
        amount=amount(resource.get("amount"), prefix + "amount"),
        currency=(text(resource, "currency", prefix) or CURRENCY).strip(),
        occurred_at=iso_time(resource.get(time_key), prefix + time_key),
        counterparty=_sender(resource, prefix) if counterparty else None,
        reference=None,
        balance_after=None,
        status=Status.COMPLETED,
        related_receipt=related,
        extra=extra,
    )


def _settlements(resource: dict[str, Any], prefix: str, extra: dict[str, str]) -> Mapped:
    disbursements = resource.get("disbursements")
    if disbursements is None:
        return [
            _k2_movement(
                resource,
                prefix,
                entry=Entry.SETTLEMENT,
                direction=Direction.DEBIT,
                extra=extra,
                time_keys=("transfer_time", "origination_time"),
                counterparty=False,
            )
        ]
    if not isinstance(disbursements, list):
        raise Bad(prefix + "disbursements", f"must be an array, not {json_type(disbursements)}")
    out: Mapped = []
    for index, item in enumerate(disbursements):
        path = f"{prefix}disbursements[{index}]"
        if not isinstance(item, dict):
            raise Bad(path, f"must be an object, not {json_type(item)}")
        merged = {
            "currency": resource.get("currency"),
            "origination_time": resource.get("origination_time"),
            "transfer_time": resource.get("transfer_time"),
            **{k: v for k, v in item.items() if v is not None},
        }
        out.append(
            _k2_movement(
                merged,
                path + ".",
                entry=Entry.SETTLEMENT,
                direction=Direction.DEBIT,
                extra=extra,
                receipt_key="transaction_reference",
                time_keys=("origination_time", "transfer_time"),
                counterparty=False,
                account=text(resource, "till_number", prefix),
            )
        )
    return out


def map_k2(data: dict[str, Any], prefix: str) -> Mapped:
    """One decoded K2 webhook (or Daraja-format relay) body."""
    if "topic" not in data and "TransID" in data:
        relayed = _c2b_transaction(data, prefix)
        return [dataclasses.replace(relayed, provider=PROVIDER)]
    topic = required(data, "topic", prefix)
    if topic in _NO_MONEY:
        return []
    if topic not in _RECEIVED + _REVERSED + _SETTLED:
        raise Bad(prefix + "topic", f"{topic!r} is not a K2 topic that moves money")
    event = obj(data, "event", prefix)
    resource = obj(event, "resource", prefix + "event.")
    rprefix = prefix + "event.resource."
    extra = {"topic": topic}
    if event_id := text(data, "id", prefix):
        extra["event_id"] = event_id
    if topic in _SETTLED:
        return _settlements(resource, rprefix, extra)
    if topic in _REVERSED:
        entry, direction = Entry.REVERSAL, Direction.DEBIT
    else:
        entry, direction = Entry.PAYMENT, Direction.CREDIT
    return [_k2_movement(resource, rprefix, entry=entry, direction=direction, extra=extra)]


def map_legacy(data: dict[str, Any], prefix: str) -> Mapped:
    """One legacy push notification, as form fields or a JSON object."""
    extra = {key: value for key in _LEGACY_EXTRA if (value := text(data, key, prefix))}
    return [
        build(
            {
                "amount": prefix + "amount",
                "currency": prefix + "currency",
                "occurred_at": prefix + "transaction_timestamp",
                "receipt": prefix + "transaction_reference",
                "reference": prefix + "account_number",
            },
            provider=PROVIDER,
            account=text(data, "business_number", prefix),
            receipt=required(data, "transaction_reference", prefix),
            entry=Entry.PAYMENT,
            direction=Direction.CREDIT,
            amount=amount(data.get("amount"), prefix + "amount"),
            currency=(text(data, "currency", prefix) or CURRENCY).strip(),
            occurred_at=iso_time(
                data.get("transaction_timestamp"),
                prefix + "transaction_timestamp",
                naive_is_utc=True,
            ),
            counterparty=Counterparty.of(
                text(data, "sender_phone", prefix),
                join_name(
                    text(data, "first_name", prefix),
                    text(data, "middle_name", prefix),
                    text(data, "last_name", prefix),
                ),
            ),
            reference=text(data, "account_number", prefix),
            balance_after=None,
            status=Status.COMPLETED,
            extra=extra,
        )
    ]


def _load_form(body: bytes, source: str) -> dict[str, str] | Reject:
    text_body = body.decode("utf-8", errors=UTF8_OR_CP1252).strip()
    try:
        pairs = parse_qsl(
            text_body, keep_blank_values=True, strict_parsing=True, errors=UTF8_OR_CP1252
        )
    except ValueError as exc:
        return Reject(source, None, None, f"not a form body: {exc}", body)
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key in fields and fields[key] != value:
            return Reject(source, None, key, "appears more than once with different values", body)
        fields[key] = value
    return fields


class KopoKopoWebhookParser(JsonCallbackParser):
    """``--format kopokopo-webhook``: K2 Connect webhook bodies (one, or a JSON array)."""

    name: ClassVar[str] = "kopokopo-webhook"
    provider: ClassVar[str] = PROVIDER

    def sniff(self, head: bytes, filename: str) -> bool:
        """JSON with a ``topic`` and an ``event``."""
        return head_is_json(head) and b'"topic"' in head and b'"event"' in head

    def _map(self, data: dict[str, Any], prefix: str) -> Mapped:
        return map_k2(data, prefix)


class KopoKopoLegacyParser(JsonCallbackParser):
    """``--format kopokopo-legacy``: a legacy push body, form-encoded or JSON.

    ``parse_body`` follows ``content_type`` (``application/json`` or
    ``application/x-www-form-urlencoded``); with any other or none, a body that opens
    with ``{`` or ``[`` is JSON and anything else a form. ``parse`` reads a file the same way.
    """

    name: ClassVar[str] = "kopokopo-legacy"
    provider: ClassVar[str] = PROVIDER

    def sniff(self, head: bytes, filename: str) -> bool:
        """A form or JSON body naming ``transaction_reference`` and ``business_number``."""
        return b"transaction_reference" in head and b"business_number" in head

    def _decode(self, body: bytes, source: str, content_type: str | None) -> Any | Reject:
        kind = (content_type or "").split(";")[0].strip().lower()
        if kind == "application/x-www-form-urlencoded":
            return _load_form(body, source)
        if kind.endswith("json") or head_is_json(body):
            return load_json(body, source)
        return _load_form(body, source)

    def _map(self, data: dict[str, Any], prefix: str) -> Mapped:
        return map_legacy(data, prefix)
