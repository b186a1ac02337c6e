"""The outbox: one delivery per (transaction, sink), claimed by workers under a lease."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    exists,
    insert,
    select,
    true,
    update,
)

from ..model import Transaction
from . import claims
from .rows import idempotency_key
from .schema import attempts, deliveries, sink_state, transactions


@dataclass(frozen=True, slots=True)
class Claimed:
    """A delivery a worker now holds the lease on."""

    delivery_id: int
    transaction_id: int
    sink: str
    attempt: int
    """1 for the first try."""
    transaction: Transaction

    @property
    def idempotency_key(self) -> str:
        """The key the sink sends: the same for this (transaction, sink) forever."""
        return idempotency_key(self.transaction.identity, self.sink)


@dataclass(frozen=True, slots=True)
class AttemptRecord:
    """What one try at a delivery did."""

    worker: str
    number: int
    started_at: datetime
    finished_at: datetime
    outcome: str  # delivered | retry | dead
    status_code: int | None = None
    error: str | None = None
    response: str | None = None
    unknown_outcome: bool = False
    """Sent, but no answer came: the back office may have it."""
    request_summary: str | None = None
    document_id: str | None = None
    """The back office's id for the document, on a delivered attempt."""


def held_reversal(delivery: Any = deliveries) -> ColumnElement[bool]:
    """True for a reversal delivery whose original's delivery to the same sink is not
    delivered yet (pending, in flight, or dead): it waits, so the back office never sees
    a reversal of something it does not have. A reversal whose original is not in the
    ledger, or was not routed to this sink, is not held."""
    reversal = transactions.alias("reversal")
    original = transactions.alias("original")
    before = deliveries.alias("original_delivery")
    waiting = exists(
        select(before.c.id)
        .select_from(before.join(original, original.c.id == before.c.transaction_id))
        .where(
            before.c.sink == delivery.c.sink,
            before.c.state != "delivered",
            original.c.receipt == reversal.c.related_receipt,
            original.c.provider == reversal.c.provider,
            original.c.entry != "reversal",
        )
        .correlate_except(before, original)
    )
    return exists(
        select(reversal.c.id).where(
            reversal.c.id == delivery.c.transaction_id,
            reversal.c.entry == "reversal",
            reversal.c.related_receipt.is_not(None),
            waiting,
        )
    )


def paused_sinks() -> Select[tuple[str]]:
    """The names of paused sinks."""
    return select(sink_state.c.name).where(sink_state.c.paused == true())


def claim(
    conn: Connection,
    worker: str,
    *,
    limit: int,
    lease: timedelta,
    now: datetime,
    sinks: Sequence[str] | None = None,
) -> list[Claimed]:
    """Take up to ``limit`` due deliveries: pending and due, or in flight with a lapsed lease.

    Deliveries to a paused sink are left alone, and so is a reversal whose original's
    delivery to the same sink is not delivered yet (see :func:`held_reversal`).

    PostgreSQL skips rows other workers hold (``FOR UPDATE SKIP LOCKED``); SQLite runs
    this inside ``BEGIN IMMEDIATE``, so claims never overlap there either.
    """
    return claims.claim(conn, worker, limit=limit, lease=lease, now=now, sinks=sinks)


def finish(
    conn: Connection,
    claimed: Claimed,
    record: AttemptRecord,
    *,
    next_attempt_at: datetime | None = None,
) -> bool:
    """Store an attempt's outcome. Returns False when the lease had passed to another worker.

    A success is recorded whatever became of the lease (the back office has it, and the
    idempotency key makes a second send harmless); a retry or dead letter is recorded only
    by the claim still holding the lease: the same worker *and* the same attempt, so a
    worker that re-claimed a row after its own lease lapsed (a restart under the same name,
    a send slower than the lease) cannot act on the row with its older claim.
    """
    conn.execute(
        insert(attempts).values(
            delivery_id=claimed.delivery_id,
            number=record.number,
            worker=record.worker,
            started_at=record.started_at,
            finished_at=record.finished_at,
            outcome=record.outcome,
            status_code=record.status_code,
            error=record.error,
            response=record.response,
            unknown_outcome=record.unknown_outcome,
            request_summary=record.request_summary,
        )
    )
    d = deliveries.c
    common = {
        "last_status": record.status_code,
        "last_error": record.error,
        "response": record.response,
        "updated_at": record.finished_at,
        "lease_owner": None,
        "lease_expires_at": None,
    }
    if record.outcome == "delivered":
        statement = (
            update(deliveries)
            .where(d.id == claimed.delivery_id, d.state != "delivered")
            .values(
                state="delivered",
                delivered_at=record.finished_at,
                document_id=record.document_id,
                **common,
            )
        )
    else:
        state = "dead" if record.outcome == "dead" else "pending"
        statement = (
            update(deliveries)
            .where(
                d.id == claimed.delivery_id,
                d.state == "in_flight",
                d.lease_owner == record.worker,
                d.attempts == claimed.attempt,
            )
            .values(state=state, next_attempt_at=next_attempt_at or record.finished_at, **common)
        )
    return conn.execute(statement).rowcount == 1


def finish_many(
    conn: Connection, finished: Sequence[tuple[Claimed, AttemptRecord, datetime | None]]
) -> list[bool]:
    """:func:`finish` for several attempts at once: one INSERT and two UPDATEs, each
    executed for many rows, with the same guards per row. Returns, per attempt, whether
    it was recorded against the delivery (see :func:`finish`)."""
    return claims.finish_many(conn, finished)


def release(conn: Connection, worker: str, claimed: Sequence[Claimed], now: datetime) -> None:
    """Hand back claimed deliveries that were never sent (a worker stopping, or a lease
    about to lapse before the delivery's turn): pending again, the attempt not counted."""
    claims.release(conn, worker, claimed, now)


def replay(
    conn: Connection,
    now: datetime,
    *,
    ids: Sequence[int] | None = None,
    dead: bool = False,
    sink: str | None = None,
    receipt: str | None = None,
    since: datetime | None = None,
) -> int:
    """Make dead (or, by id or filter, any undelivered) deliveries due again; returns how
    many. ``since`` is compared with the delivery's last change (when it died)."""
    d = deliveries.c
    condition = d.state != "delivered"
    if ids is not None:
        condition = and_(condition, d.id.in_(list(ids)))
    if dead:
        condition = and_(condition, d.state == "dead")
    if sink is not None:
        condition = and_(condition, d.sink == sink)
    if receipt is not None:
        condition = and_(
            condition,
            d.transaction_id.in_(
                select(transactions.c.id).where(transactions.c.receipt == receipt)
            ),
        )
    if since is not None:
        condition = and_(condition, d.updated_at >= since)
    result = conn.execute(
        update(deliveries)
        .where(condition, d.state != "in_flight")
        .values(state="pending", attempts=0, next_attempt_at=now, updated_at=now)
    )
    return result.rowcount


def set_paused(
    conn: Connection, name: str, paused: bool, now: datetime, reason: str | None
) -> None:
    """Pause or resume a sink (persisted: every worker reads it at each claim)."""
    changed = conn.execute(
        update(sink_state)
        .where(sink_state.c.name == name)
        .values(paused=paused, reason=reason, updated_at=now)
    ).rowcount
    if not changed:
        conn.execute(
            insert(sink_state).values(name=name, paused=paused, reason=reason, updated_at=now)
        )
