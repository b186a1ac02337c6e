"""The encoder interface, in its two shapes.

*Message* encoders turn one transaction into one message (ISO 8583, JSON, camt.054);
*statement* encoders turn an account's entries over a period into one document (camt.053,
MT940, OFX, CSV). Both refuse to emit anything invalid: they raise :class:`EncodeError`
naming the transaction and field rather than writing an approximate document.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar, Protocol

from ..errors import PesabridgeError
from ..model import Direction, Transaction


class EncodeError(PesabridgeError, ValueError):
    """The input cannot be encoded faithfully; nothing was written."""

    def __init__(self, message: str, *, receipt: str | None = None, field: str | None = None):
        self.receipt = receipt
        self.field = field
        where = " ".join(part for part in (receipt, field) if part)
        super().__init__(f"{where}: {message}" if where else message)


@dataclass(frozen=True, slots=True)
class MessageContext:
    """What a message encoder may need beyond the transaction."""

    idempotency_key: str = ""
    stan: int | None = None
    """ISO 8583 system trace audit number, allocated by the caller (1..999999)."""
    sink: str = ""
    now: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass(frozen=True, slots=True)
class Statement:
    """An account's entries over a period, with its opening balance.

    The closing balance is computed, never taken on trust: ``opening + credits − debits``.
    """

    account: str
    currency: str
    period_start: date
    period_end: date
    opening_balance: Decimal
    entries: Sequence[Transaction]
    provider: str = "mpesa"
    holder: str | None = None
    statement_id: str | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def credits(self) -> Decimal:
        return sum((t.amount for t in self.entries if t.direction is Direction.CREDIT), Decimal(0))

    @property
    def debits(self) -> Decimal:
        return sum((t.amount for t in self.entries if t.direction is Direction.DEBIT), Decimal(0))

    @property
    def closing_balance(self) -> Decimal:
        return self.opening_balance + self.credits - self.debits


class MessageEncoder(Protocol):
    """One transaction in, one message out."""

    name: ClassVar[str]
    media_type: ClassVar[str]

    def encode(self, txn: Transaction, context: MessageContext) -> bytes: ...


class StatementEncoder(Protocol):
    """One statement in, one document out."""

    name: ClassVar[str]
    media_type: ClassVar[str]

    def encode_statement(self, statement: Statement) -> bytes: ...


Options = dict[str, Any]
