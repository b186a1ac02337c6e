"""Small builders shared by tests (not fixtures: plain functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pesabridge.formats.base import Observation
from pesabridge.model import EAT, Counterparty, Direction, Entry, Transaction

BASE_TIME = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


def txn(receipt: str = "SLK4H7R2PQ", **changes: Any) -> Transaction:
    """A completed paybill payment; any field can be overridden by keyword."""
    fields: dict[str, Any] = {
        "provider": "mpesa",
        "account": "600100",
        "receipt": receipt,
        "entry": Entry.PAYMENT,
        "direction": Direction.CREDIT,
        "amount": Decimal("1500.00"),
        "currency": "KES",
        "occurred_at": datetime(2024, 5, 6, 21, 5, 59, tzinfo=EAT),
        "counterparty": Counterparty(msisdn="254712345678", name="JANE WANJIKU"),
        "reference": "INV-1001",
    }
    fields.update(changes)
    return Transaction(**fields)


def payment(
    receipt: str,
    amount: str = "100.00",
    *,
    reference: str | None = "INV-1",
    account: str = "600977",
    minutes: int = 0,
) -> Transaction:
    """A completed M-Pesa paybill payment."""
    return Transaction(
        provider="mpesa",
        account=account,
        receipt=receipt,
        entry="payment",  # type: ignore[arg-type]
        direction="credit",  # type: ignore[arg-type]
        amount=Decimal(amount),
        currency="KES",
        occurred_at=BASE_TIME + timedelta(minutes=minutes),
        counterparty=Counterparty.of("254712345678", "JANE DOE"),
        reference=reference,
    )


def observed(txn: Transaction, source: str = "test", line: int | None = None) -> Observation:
    """An observation of ``txn`` as a callback body would carry it."""
    return Observation(txn, source, line, repr(txn.to_dict()).encode())
