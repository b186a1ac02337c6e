"""Small builders shared by tests (not fixtures: plain functions)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from pesabridge.formats.base import Observation
from pesabridge.model import Counterparty, Transaction

BASE_TIME = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


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
