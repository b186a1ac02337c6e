"""What reconciliation reports: day summaries, exceptions, the report of one run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal

# Outcomes counted per day. Those in EXCEPTION_KINDS need a person; the rest do not.
MATCHED = "matched"
"""In the statement and received by callback (one transaction, two pieces of evidence)."""
STATEMENT_ONLY = "statement_only"
"""In the statement, on an account without callbacks (or an entry no callback reports)."""
BACKFILLED = "backfilled"
"""In the statement, never received by callback: routed from the statement row."""
UNCONFIRMED = "unconfirmed"
"""Received by callback, absent from a statement that covers its time."""
AWAITING_STATEMENT = "awaiting_statement"
"""Received by callback; no ingested statement covers its time yet."""
HELD = "held"
"""Received by callback, at least ``hold_above``, not confirmed by a statement yet: not
delivered (counted in addition to awaiting_statement or unconfirmed)."""
DUPLICATE_CALLBACK = "duplicate_callback"
"""Received by callback more than once (recorded once, delivered once)."""
RULE_MATCH = "rule_match"
"""A statement row and a callback with different receipts paired by the match rules."""
DISCREPANCY = "discrepancy"
"""Same identity, the sightings disagree (amount, reference ...)."""
ORPHAN = "orphan"
"""A charge without its payment, a reversal without its original."""
POSTED = "posted"
"""Delivered, and found in the back office's record."""
NOT_POSTED = "not_posted"
"""Delivered to the sink but absent from the back office's record."""
UNEXPECTED_POSTING = "unexpected_posting"
"""In the back office's record, matching nothing pesabridge delivered."""
UNDELIVERED = "undelivered"
"""Routed to the sink, not delivered (yet): pending, retrying or dead."""
BALANCE_BREAK = "balance_break"
"""A running balance that does not follow from the previous one, or totals that do not
add up (opening + credits - debits != closing)."""

EXCEPTION_KINDS = (
    UNCONFIRMED,
    DISCREPANCY,
    RULE_MATCH,
    ORPHAN,
    NOT_POSTED,
    UNEXPECTED_POSTING,
    BALANCE_BREAK,
)
OUTCOMES = (
    MATCHED,
    STATEMENT_ONLY,
    BACKFILLED,
    AWAITING_STATEMENT,
    HELD,
    DUPLICATE_CALLBACK,
    POSTED,
    UNDELIVERED,
    *EXCEPTION_KINDS,
)

# Exception statuses.
OPEN = "open"
RESOLVED = "resolved"
"""Closed by a person, with a comment (audited)."""
REPAIRED = "repaired"
"""Repaired automatically (a backfill): kept for the record, never open."""
CLEARED = "cleared"
"""Open once, and not found by a later run (a late callback arrived, say)."""


@dataclass(frozen=True, slots=True)
class DaySummary:
    """One account's day: per outcome, how many records and how much money.

    ``counts`` and ``amounts`` are keyed by outcome (see :data:`OUTCOMES`); an outcome
    absent from the day is absent from the mappings. ``open_exceptions`` counts the
    day's exceptions still open now.
    """

    provider: str
    account: str
    day: date
    currency: str
    counts: Mapping[str, int]
    amounts: Mapping[str, Decimal]
    open_exceptions: int = 0
    run_id: int | None = None
    """The run that last reconciled the day."""

    def count(self, outcome: str) -> int:
        return self.counts.get(outcome, 0)

    def amount(self, outcome: str) -> Decimal:
        return self.amounts.get(outcome, Decimal(0))


@dataclass(frozen=True, slots=True)
class ReconException:
    """A difference found by reconciliation.

    ``kind`` is one of :data:`EXCEPTION_KINDS` (or ``backfilled``, kept with status
    ``repaired``); ``status`` is ``open``, ``resolved`` (by ``resolved_by``, with
    ``comment``), ``repaired`` or ``cleared``. ``transaction_id`` links to the ledger
    where the finding is about one transaction; ``file_id``/``line`` locate a statement
    row (balance breaks); ``sink`` names the sink (not posted, unexpected posting).
    """

    id: int
    provider: str
    account: str
    day: date
    kind: str
    status: str
    detail: str
    transaction_id: int | None = None
    receipt: str | None = None
    sink: str | None = None
    file_id: int | None = None
    line: int | None = None
    amount: Decimal | None = None
    currency: str | None = None
    first_seen_at: datetime | None = None
    last_seen_at: datetime | None = None
    resolved_at: datetime | None = None
    resolved_by: str | None = None
    comment: str | None = None


@dataclass(frozen=True, slots=True)
class Finding:
    """What one run found, before it is persisted as a :class:`ReconException`."""

    key: str
    """Names the finding across runs (what, where), never the run."""
    kind: str
    day: date
    detail: str
    status: str = OPEN
    transaction_id: int | None = None
    receipt: str | None = None
    sink: str | None = None
    file_id: int | None = None
    line: int | None = None
    amount_minor: int | None = None
    currency: str | None = None


@dataclass(frozen=True, slots=True)
class MatchCount:
    """How many pairs a method made (exact identity, rules, groups) and their mean
    confidence."""

    method: str
    pairs: int
    confidence: float


@dataclass(slots=True)
class ReconciliationReport:
    """The result of :func:`pesabridge.reconcile.run_reconciliation`."""

    run_id: int
    provider: str
    account: str
    start: date
    end: date
    currency: str
    days: list[DaySummary] = field(default_factory=list)
    exceptions: list[ReconException] = field(default_factory=list)
    """Open exceptions of the period (resolved ones are not repeated)."""
    repaired: list[ReconException] = field(default_factory=list)
    """What this run repaired itself (backfills)."""
    matches: list[MatchCount] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """Warnings for the reader: unreadable back-office rows, no statement covering ..."""
    backfilled_deliveries: int = 0
    """Outbox rows this run added for backfilled transactions."""
    released_deliveries: int = 0
    """Outbox rows this run added for held callbacks a statement confirmed."""

    @property
    def open_exceptions(self) -> int:
        return len(self.exceptions)

    @property
    def clean(self) -> bool:
        """No exception is left open for the period."""
        return not self.exceptions

    def total(self, outcome: str) -> int:
        """How many records had ``outcome`` over the whole period."""
        return sum(day.count(outcome) for day in self.days)
