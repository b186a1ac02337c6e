"""The ISO 8583 sink's journal: what was sent to the host for each delivery.

A request (0200) whose answer never came may have been posted, so it must be reversed
before it is sent again — even when the process that sent it died. The sink therefore
writes what it is about to send (message type, STAN, RRN, transmission time, phase)
*before* sending it, and every worker that later claims the delivery reads it first.

The journal is one row per delivery in its own table, ``sink_exchanges`` (never in
``attempts``: it is not an attempt, and the attempt history, the dashboard's timeline
and its failure counts stay about attempts). The state itself is JSON in ``state``;
phase, MTI, STAN and RRN are copied into columns for people and SQL. Every change is a
compare-and-set on ``version``, so two workers holding the same delivery (a lease that
lapsed) cannot both act on it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import Connection, and_, func, select, update

from .connector import insert_ignore
from .schema import deliveries, sink_exchanges, transactions

Phase = Literal["sent", "unsent", "posted", "refused", "reversing", "reversed"]
UNRESOLVED: frozenset[str] = frozenset({"sent", "reversing"})
"""Phases in which the host may hold something the sink has no answer for."""

Version = int
"""The journal's version as read: :func:`save` changes it only if it is still this one."""


@dataclass(frozen=True, slots=True)
class Exchange:
    """Where one delivery stands with the host."""

    phase: Phase
    mti: str
    """The message type of the financial message (0200, 0220, 0420 ...), never a repeat."""
    stan: int
    rrn: str
    sent_at: str
    """When it was first sent (ISO 8601, UTC): field 7 of it and of its repeats."""
    reversal_stan: int | None = None
    reversal_sent_at: str | None = None
    repeats: int = 0
    """Repeats (0221, 0421) sent of the message in flight."""
    reversals: int = 0
    """Reversals the host confirmed for this delivery so far."""
    code: str | None = None
    """The host's last response code."""

    @property
    def sent_time(self) -> datetime:
        return datetime.fromisoformat(self.sent_at)

    def but(self, **changes: Any) -> Exchange:
        return replace(self, **changes)

    def describe(self) -> str:
        """One line for people: what is on the wire and what it waits for."""
        text = f"{self.mti} STAN {self.stan:06} RRN {self.rrn.strip()} sent {self.sent_at}"
        if self.phase == "reversing" and self.reversal_stan is not None:
            text += f"; reversing with STAN {self.reversal_stan:06} ({self.repeats} repeats)"
        elif self.phase == "sent" and self.repeats:
            text += f" ({self.repeats} repeats)"
        if self.code is not None:
            text += f"; last code {self.code}"
        return text


@dataclass(frozen=True, slots=True)
class Journal:
    """A delivery's journal as people see it (``pesabridge deliveries show``, dashboard)."""

    sink: str
    exchange: Exchange
    created_at: datetime
    updated_at: datetime

    @property
    def phase(self) -> str:
        return self.exchange.phase

    @property
    def unresolved(self) -> bool:
        """A message is on the wire unanswered: the host may have booked it."""
        return self.exchange.phase in UNRESOLVED

    def describe(self) -> str:
        return self.exchange.describe()


def _now() -> datetime:
    # Not store.utcnow: the read models import this module, and store imports them.
    return datetime.now(UTC)


def load(conn: Connection, delivery_id: int) -> tuple[Exchange | None, Version | None]:
    """The journal of a delivery and its version (for :func:`save`), or (None, None)."""
    j = sink_exchanges.c
    row = conn.execute(select(j.state, j.version).where(j.delivery_id == delivery_id)).first()
    if row is None:
        return None, None
    return Exchange(**json.loads(row.state)), int(row.version)


def journal_of(conn: Connection, delivery_id: int) -> Journal | None:
    """The journal of a delivery with its sink and times, for people."""
    j = sink_exchanges.c
    row = conn.execute(
        select(j.sink, j.state, j.created_at, j.updated_at).where(j.delivery_id == delivery_id)
    ).first()
    if row is None:
        return None
    return Journal(row.sink, Exchange(**json.loads(row.state)), row.created_at, row.updated_at)


def save(
    conn: Connection, delivery_id: int, exchange: Exchange, previous: Version | None
) -> Version | None:
    """Record ``exchange`` if the journal is still at version ``previous`` (None: no
    journal yet).

    Returns the new version, or None when another worker changed it meanwhile (the
    caller must then not send anything).
    """
    now = _now()
    values = {
        "phase": exchange.phase,
        "mti": exchange.mti,
        "stan": exchange.stan,
        "rrn": exchange.rrn,
        "state": json.dumps(asdict(exchange), sort_keys=True),
        "updated_at": now,
    }
    j = sink_exchanges.c
    if previous is None:
        # Two workers starting the same delivery's first exchange at once: the primary
        # key lets one row in; the other inserts nothing and is told so (PostgreSQL
        # makes it wait for the first to commit, so it never sends alongside it).
        sink = select(deliveries.c.sink).where(deliveries.c.id == delivery_id)
        inserted = conn.execute(
            insert_ignore(conn.dialect.name, sink_exchanges)
            .values(
                delivery_id=delivery_id,
                sink=sink.scalar_subquery(),
                version=1,
                created_at=now,
                **values,
            )
            # RETURNING, not rowcount: the driver may report -1 for an INSERT that was
            # ignored or not.
            .returning(j.version)
        ).scalar()
        return None if inserted is None else int(inserted)
    updated = conn.execute(
        update(sink_exchanges)
        .where(j.delivery_id == delivery_id, j.version == previous)
        .values(version=j.version + 1, **values)
        .returning(j.version)
    ).scalar()
    return None if updated is None else int(updated)


def original_of(
    conn: Connection, sink: str, provider: str, account: str, receipt: str
) -> Exchange | None:
    """The journal of the delivery to ``sink`` of the transaction a reversal undoes (the
    non-reversal entry with that receipt), for the reversal's original data elements."""
    d, t, j = deliveries.c, transactions.c, sink_exchanges.c
    row = conn.execute(
        select(j.state)
        .select_from(
            sink_exchanges.join(deliveries, d.id == j.delivery_id).join(
                transactions, t.id == d.transaction_id
            )
        )
        .where(
            and_(
                d.sink == sink,
                t.provider == provider,
                t.account == account,
                t.receipt == receipt,
                t.entry != "reversal",
            )
        )
        .order_by(j.delivery_id)
        .limit(1)
    ).first()
    return None if row is None else Exchange(**json.loads(row.state))


def count(conn: Connection) -> int:
    """How many deliveries have a journal (for tests and status)."""
    return int(conn.execute(select(func.count()).select_from(sink_exchanges)).scalar_one())
