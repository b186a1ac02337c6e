"""MTN Mobile Money (MoMo Open API) callbacks into canonical transactions.

MoMo posts the final state of a RequestToPay (collection) or a Transfer
(disbursement) to the ``X-Callback-Url``, in the shape of the GET status response::

    {"amount": 100, "currency": "UGX", "financialTransactionId": 23503452,
     "externalId": 947354, "payer": {"partyIdType": "MSISDN", "partyId": 4656473839},
     "status": "SUCCESSFUL"}

The schema says strings; real callbacks carry numbers too, and both are read from their
JSON text (``financialTransactionId`` stays ``"23503452"``). ``SUCCESSFUL`` is a money
movement: a ``payer`` makes it a payment (credit), a ``payee`` a payout (debit).
``FAILED``, ``REJECTED`` and ``TIMEOUT`` are a :class:`FailedAttempt` whose
``request_id`` is the ``externalId`` and whose ``code`` is the ``reason`` (a string, or
the ``code`` of a ``{"code", "message"}`` object). ``PENDING``, ``CREATED`` and
``ONGOING`` are not final and yield nothing: MoMo calls back again when the state
settles. The callback carries no time: the server stamps the arrival time.
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
    head_is_json,
    json_type,
    required,
    text,
)

PROVIDER = "mtn-momo"
_FAILED = ("FAILED", "REJECTED", "TIMEOUT")
_PENDING = ("PENDING", "CREATED", "ONGOING")


def _reason(data: dict[str, Any], prefix: str) -> tuple[str | None, str | None]:
    """``reason`` as (code, message): a string, or an object with ``code``/``message``."""
    value = data.get("reason")
    if isinstance(value, dict):
        code = text(value, "code", prefix + "reason.")
        return code, text(value, "message", prefix + "reason.") or code
    reason = as_text(value, prefix + "reason")
    reason = reason.strip() if reason and reason.strip() else None
    return reason, reason


def _party(data: dict[str, Any], key: str, prefix: str) -> Counterparty | None:
    party = data.get(key)
    if party is None:
        return None
    if not isinstance(party, dict):
        raise Bad(prefix + key, f"must be an object, not {json_type(party)}")
    kind = (text(party, "partyIdType", prefix + key + ".") or "MSISDN").strip().upper()
    party_id = text(party, "partyId", prefix + key + ".")
    if kind != "MSISDN":
        return None  # an email or party code is not a phone number; kept in extra
    return Counterparty.of(party_id, None)


def map_momo(data: dict[str, Any], prefix: str) -> Mapped:
    """One decoded MoMo callback: a transaction, a failure, nothing, or :class:`Bad`."""
    status = required(data, "status", prefix).upper()
    external_id = text(data, "externalId", prefix)
    if status in _FAILED:
        code, message = _reason(data, prefix)
        return [Failure(external_id.strip() if external_id else None, code, message or status)]
    if status in _PENDING:
        return []
    if status != "SUCCESSFUL":
        known = ", ".join(("SUCCESSFUL", *_FAILED, *_PENDING))
        raise Bad(prefix + "status", f"{status!r} is not one of {known}")
    payout = data.get("payer") is None and data.get("payee") is not None
    side = "payee" if payout else "payer"
    extra = {"status": status}
    party = data.get(side)
    if isinstance(party, dict) and (kind := text(party, "partyIdType", f"{prefix}{side}.")):
        extra[f"{side}.partyIdType"] = kind
        if kind.strip().upper() != "MSISDN" and (
            party_id := text(party, "partyId", f"{prefix}{side}.")
        ):
            extra[f"{side}.partyId"] = party_id
    currency = required(data, "currency", prefix)
    return [
        build(
            {
                "amount": prefix + "amount",
                "currency": prefix + "currency",
                "receipt": prefix + "financialTransactionId",
                "reference": prefix + "externalId",
            },
            provider=PROVIDER,
            account=None,
            receipt=required(data, "financialTransactionId", prefix),
            entry=Entry.PAYOUT if payout else Entry.PAYMENT,
            direction=Direction.DEBIT if payout else Direction.CREDIT,
            amount=amount(data.get("amount"), prefix + "amount"),
            currency=currency.upper(),
            occurred_at=None,
            counterparty=_party(data, side, prefix),
            reference=external_id,
            balance_after=None,
            status=Status.COMPLETED,
            extra=extra,
        )
    ]


class MtnMomoCallbackParser(JsonCallbackParser):
    """``--format mtn-momo-callback``: MoMo callbacks (one body, or a JSON array)."""

    name: ClassVar[str] = "mtn-momo-callback"
    provider: ClassVar[str] = PROVIDER

    def sniff(self, head: bytes, filename: str) -> bool:
        """JSON with a ``status`` and ``financialTransactionId``, or ``externalId`` and a party."""
        if not head_is_json(head) or b'"status"' not in head:
            return False
        return b'"financialTransactionId"' in head or (
            b'"externalId"' in head and (b'"payer"' in head or b'"payee"' in head)
        )

    def _map(self, data: dict[str, Any], prefix: str) -> Mapped:
        return map_momo(data, prefix)
