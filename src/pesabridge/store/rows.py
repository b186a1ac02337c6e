"""Converting canonical transactions to ledger rows and back."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from ..model import Counterparty, Direction, Entry, MsisdnKind, Status, Transaction
from ..model.currency import minor_units

TRANSACTION_FIELDS = (
    "provider",
    "account",
    "receipt",
    "entry",
    "direction",
    "amount_minor",
    "currency",
    "occurred_at",
    "msisdn",
    "msisdn_kind",
    "name",
    "reference",
    "balance_after_minor",
    "status",
    "related_receipt",
)
"""The ``transactions`` columns that hold the canonical transaction, in table order."""


def to_minor(amount: Decimal, currency: str) -> int:
    """``Decimal("1500.00")`` KES -> ``150000``."""
    return int(amount.scaleb(minor_units(currency)))


def from_minor(value: int, currency: str) -> Decimal:
    """``150000`` KES -> ``Decimal("1500.00")``."""
    return Decimal(value).scaleb(-minor_units(currency))


def transaction_row(txn: Transaction, *, origin: str, now: datetime) -> dict[str, Any]:
    """The ``transactions`` row for a canonical transaction."""
    cp = txn.counterparty
    return {
        "provider": txn.provider,
        "account": txn.account or "",
        "receipt": txn.receipt,
        "entry": txn.entry.value,
        "direction": txn.direction.value,
        "amount_minor": to_minor(txn.amount, txn.currency),
        "currency": txn.currency,
        "occurred_at": txn.occurred_at,
        "msisdn": cp.msisdn if cp else None,
        "msisdn_kind": cp.msisdn_kind.value if cp and cp.msisdn_kind else None,
        "name": cp.name if cp else None,
        "reference": txn.reference,
        "balance_after_minor": None
        if txn.balance_after is None
        else to_minor(txn.balance_after, txn.currency),
        "status": txn.status.value,
        "related_receipt": txn.related_receipt,
        "origin": origin,
        "created_at": now,
    }


def row_transaction(row: Mapping[Any, Any]) -> Transaction:
    """The canonical transaction of a ``transactions`` row."""
    currency = row["currency"]
    counterparty = None
    if row["msisdn"] is not None or row["name"] is not None:
        kind = row["msisdn_kind"]
        counterparty = Counterparty(
            msisdn=row["msisdn"],
            msisdn_kind=MsisdnKind(kind) if kind else None,
            name=row["name"],
        )
    balance = row["balance_after_minor"]
    return Transaction(
        provider=row["provider"],
        account=row["account"] or None,
        receipt=row["receipt"],
        entry=Entry(row["entry"]),
        direction=Direction(row["direction"]),
        amount=from_minor(row["amount_minor"], currency),
        currency=currency,
        occurred_at=row["occurred_at"],
        counterparty=counterparty,
        reference=row["reference"],
        balance_after=None if balance is None else from_minor(balance, currency),
        status=Status(row["status"]),
        related_receipt=row["related_receipt"],
    )


def idempotency_key(identity: tuple[str, str, str, str], sink: str) -> str:
    """The key a sink sends with a delivery: stable for a (transaction, sink) forever.

    Derived from the identity rather than a database id, so a rebuilt ledger or a second
    installation still presents the same key to the back office.
    """
    text = "\x1f".join((*identity, sink))
    return "pb-" + hashlib.sha256(text.encode()).hexdigest()[:40]


def fingerprint(*parts: str | bytes) -> str:
    """sha256 over the parts: identifies one sighting (where and what)."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode() if isinstance(part, str) else part)
        digest.update(b"\x1f")
    return digest.hexdigest()
