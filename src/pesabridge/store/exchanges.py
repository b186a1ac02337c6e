"""The ISO 8583 sink's journal: what was sent to the host for each delivery.

A request (0200) whose answer never came may have been posted, so it must be reversed
before it is sent again — even when the process that sent it died. The sink therefore
writes what it is about to send (message type, STAN, RRN, transmission time, phase)
*before* sending it, and every worker that later claims the delivery reads it first.

The journal is one row per delivery in ``attempts`` with ``number`` 0 (real attempts are
numbered from 1), so ``pesabridge deliveries show`` lists it with the attempts: its
outcome column is the phase, its request summary says what is on the wire. The state
itself is JSON in ``response``, and every change is a compare-and-set on that text, so
two workers holding the same delivery (a lease that lapsed) cannot both act on it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from .schema import attempts, deliveries, transactions
from .store import utcnow

JOURNAL_NUMBER = 0
JOURNAL_WORKER = "iso8583 exchange"

Phase = Literal["sent", "unsent", "posted", "refused", "reversing", "reversed"]
UNRESOLVED: frozenset[str] = frozenset({"sent", "reversing"})
"""Phases in which the host may hold something the sink has no answer for."""


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


def _row(conn: Connection, delivery_id: int) -> tuple[int, str] | None:
    a = attempts.c
    row = conn.execute(
        select(a.id, a.response)
        .where(a.delivery_id == delivery_id, a.number == JOURNAL_NUMBER)
        .order_by(a.id)
        .limit(1)
    ).first()
    return None if row is None else (int(row.id), str(row.response))


def load(conn: Connection, delivery_id: int) -> tuple[Exchange | None, str | None]:
    """The journal of a delivery and its text (for :func:`save`), or (None, None)."""
    found = _row(conn, delivery_id)
    if found is None:
        return None, None
    text = found[1]
    return Exchange(**json.loads(text)), text


def save(
    conn: Connection, delivery_id: int, exchange: Exchange, previous: str | None
) -> str | None:
    """Record ``exchange`` if the journal still reads ``previous`` (None: no journal yet).

    Returns the new text, or None when another worker changed it meanwhile (the caller
    must then not send anything).
    """
    text = json.dumps(asdict(exchange), sort_keys=True)
    now = utcnow()
    values = {
        "finished_at": now,
        "outcome": exchange.phase,
        "status_code": int(exchange.code) if exchange.code and exchange.code.isdigit() else None,
        "response": text,
        "unknown_outcome": exchange.phase in UNRESOLVED,
        "request_summary": exchange.describe(),
    }
    a = attempts.c
    if previous is None:
        conn.execute(
            insert(attempts).values(
                delivery_id=delivery_id,
                number=JOURNAL_NUMBER,
                worker=JOURNAL_WORKER,
                started_at=now,
                **values,
            )
        )
        first = _row(conn, delivery_id)
        if first is None or first[1] != text:
            # Another worker wrote the first journal row at the same moment: its row
            # (the lowest id) wins; ours goes.
            conn.execute(
                delete(attempts).where(
                    a.delivery_id == delivery_id,
                    a.number == JOURNAL_NUMBER,
                    a.id != (first[0] if first else -1),
                )
            )
            return None
        return text
    result = conn.execute(
        update(attempts)
        .where(a.delivery_id == delivery_id, a.number == JOURNAL_NUMBER, a.response == previous)
        .values(**values)
    )
    return text if result.rowcount == 1 else None


def original_of(
    conn: Connection, sink: str, provider: str, account: str, receipt: str
) -> Exchange | None:
    """The journal of the delivery to ``sink`` of the transaction a reversal undoes (the
    non-reversal entry with that receipt), for the reversal's original data elements."""
    d, t, a = deliveries.c, transactions.c, attempts.c
    row = conn.execute(
        select(a.response)
        .select_from(
            attempts.join(deliveries, d.id == a.delivery_id).join(
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
                a.number == JOURNAL_NUMBER,
            )
        )
        .order_by(a.id)
        .limit(1)
    ).first()
    return None if row is None else Exchange(**json.loads(row.response))


def count(conn: Connection) -> int:
    """How many deliveries have a journal (for tests and status)."""
    return int(
        conn.execute(
            select(func.count()).select_from(attempts).where(attempts.c.number == JOURNAL_NUMBER)
        ).scalar_one()
    )
