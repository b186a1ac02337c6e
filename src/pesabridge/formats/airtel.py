"""Airtel Money (Open API) collection callbacks into canonical transactions.

Airtel posts the outcome of a USSD-push collection::

    {"transaction": {"id": "BBZMiscxy",
      "message": "Paid UGX 5,000 to TECHNOLOGIES LIMITED Charge UGX 140, Trans ID MP2106...",
      "status_code": "TS", "airtel_money_id": "MP210603.1234.L06941"},
     "hash": "..."}

The callback has no structured amount: the currency and amount are the ones after
``Paid`` in ``message`` (the charge is the payer's and is not a transaction). ``TS`` is a
payment received; ``TF`` (failed) and ``TE`` (expired) are a :class:`FailedAttempt`
whose ``request_id`` is ``transaction.id``; ``TIP`` (in progress) and ``TA`` (ambiguous)
are not final and yield nothing. The callback carries no time, payer or wallet: the
server stamps the arrival time and fills the account from its configuration.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar

from ..model import Direction, Entry, Status
from ._callback import (
    Bad,
    Failure,
    JsonCallbackParser,
    Mapped,
    amount,
    build,
    head_is_json,
    obj,
    required,
    text,
)

PROVIDER = "airtel"
_PAID = re.compile(r"\bPaid\s+([A-Z]{3})\s*([0-9][0-9,]*(?:\.[0-9]+)?)")
_SUCCESS = ("TS",)
_FAILED = ("TF", "TE")
_PENDING = ("TIP", "TA")


def map_airtel(data: dict[str, Any], prefix: str) -> Mapped:
    """One decoded Airtel callback: a transaction, a failure, nothing, or :class:`Bad`."""
    txn = obj(data, "transaction", prefix)
    prefix += "transaction."
    status = required(txn, "status_code", prefix).upper()
    message = text(txn, "message", prefix)
    if status in _FAILED:
        request_id = text(txn, "id", prefix)
        reason = message.strip() if message else f"status_code {status}"
        return [Failure(request_id.strip() if request_id else None, status, reason)]
    if status in _PENDING:
        return []
    if status not in _SUCCESS:
        known = ", ".join(_SUCCESS + _FAILED + _PENDING)
        raise Bad(prefix + "status_code", f"{status!r} is not one of {known}")
    receipt = required(txn, "airtel_money_id", prefix)
    if message is None:
        raise Bad(prefix + "message", "is missing (the amount is only in the message)")
    paid = _PAID.search(message)
    if paid is None:
        raise Bad(prefix + "message", f"has no 'Paid <currency> <amount>': {message!r}")
    currency, money = paid.groups()
    path = prefix + "message"
    return [
        build(
            {"amount": path, "currency": path, "receipt": prefix + "airtel_money_id"},
            provider=PROVIDER,
            account=None,
            receipt=receipt,
            entry=Entry.PAYMENT,
            direction=Direction.CREDIT,
            amount=amount(money, path),
            currency=currency,
            occurred_at=None,
            counterparty=None,
            reference=text(txn, "id", prefix),
            balance_after=None,
            status=Status.COMPLETED,
            extra={"status_code": status},
        )
    ]


class AirtelCallbackParser(JsonCallbackParser):
    """``--format airtel-callback``: Airtel Money callbacks (one body, or a JSON array)."""

    name: ClassVar[str] = "airtel-callback"
    provider: ClassVar[str] = PROVIDER

    def sniff(self, head: bytes, filename: str) -> bool:
        """JSON with a ``transaction`` carrying ``status_code`` and ``airtel_money_id``."""
        return (
            head_is_json(head)
            and b'"transaction"' in head
            and b'"status_code"' in head
            and (b'"airtel_money_id"' in head)
        )

    def _map(self, data: dict[str, Any], prefix: str) -> Mapped:
        return map_airtel(data, prefix)
