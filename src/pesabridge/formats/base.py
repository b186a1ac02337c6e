"""What every parser yields, and the interface a parser implements.

A parser never raises on bad input: it yields :class:`Observation` for every good
transaction, :class:`Reject` for every row or payload it cannot read (naming the source,
line or JSON path, field and reason), and, for statement files, one
:class:`StatementHeader` describing the statement itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import BinaryIO, ClassVar, Protocol

from ..model import Transaction


@dataclass(frozen=True, slots=True)
class Observation:
    """One sighting of a transaction: where it was seen and the exact bytes."""

    transaction: Transaction
    source: str
    """File name, or the callback's request id."""
    line: int | None
    """1-based line in the file; ``None`` for a whole payload (a callback body)."""
    raw: bytes

    @property
    def location(self) -> str:
        return self.source if self.line is None else f"{self.source}:{self.line}"


@dataclass(frozen=True, slots=True)
class Reject:
    """Input that could not become a transaction, and why. Kept in quarantine."""

    source: str
    line: int | None
    """1-based line in the file, or ``None``."""
    field: str | None
    """Column name or JSON path of the bad value; ``None`` when the whole row is bad."""
    reason: str
    raw: bytes = b""

    def __str__(self) -> str:
        where = self.source if self.line is None else f"{self.source}:{self.line}"
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


@dataclass(frozen=True, slots=True)
class StatementHeader:
    """What a statement file says about itself (its preamble)."""

    source: str
    provider: str
    account: str | None
    holder: str | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None
    opening_balance: Decimal | None = None
    closing_balance: Decimal | None = None
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class FailedAttempt:
    """A provider's report that a payment did not happen: no money moved, no receipt.

    STK push cancelled by the user (ResultCode 1032), a Daraja Result with a non-zero
    ResultCode, Airtel ``TF``, MTN ``FAILED``. Recorded against its request, never posted.
    """

    source: str
    provider: str
    request_id: str | None
    """The provider's id of the attempt (CheckoutRequestID, ConversationID, externalId)."""
    code: str | None
    reason: str
    raw: bytes = b""


ParseItem = Observation | Reject | StatementHeader | FailedAttempt


class Parser(Protocol):
    """A format: turns bytes into observations and rejects.

    ``name`` is the ``--format`` value. ``sniff`` looks at the first bytes of an input
    (at most 64 KiB) and its file name, and says whether this parser reads it; ``auto``
    asks every registered parser in turn.
    """

    name: ClassVar[str]

    def sniff(self, head: bytes, filename: str) -> bool: ...

    def parse(self, stream: BinaryIO, source: str) -> Iterator[ParseItem]: ...


class CallbackParser(Parser, Protocol):
    """A format that arrives as an HTTP request body (a provider callback).

    ``parse_body`` never raises on bad input: it returns the observations, failed
    attempts and rejects the body holds (usually exactly one item).
    """

    def parse_body(
        self, body: bytes, source: str, content_type: str | None = None
    ) -> list[ParseItem]: ...
