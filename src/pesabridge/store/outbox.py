"""The outbox: one delivery per (transaction, sink), claimed by workers under a lease."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, and_, insert, or_, select, update

from ..model import Transaction
from .rows import idempotency_key, row_transaction
from .schema import attempts, deliveries, transactions


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

    PostgreSQL skips rows other workers hold (``FOR UPDATE SKIP LOCKED``); SQLite runs
    this inside ``BEGIN IMMEDIATE``, so claims never overlap there either.
    """
    d = deliveries.c
    due = or_(
        and_(d.state == "pending", d.next_attempt_at <= now),
        and_(d.state == "in_flight", d.lease_expires_at < now),
    )
    if sinks is not None:
        due = and_(due, d.sink.in_(list(sinks)))
    candidates = (
        select(d.id)
        .where(due)
        .order_by(d.next_attempt_at, d.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
    )
    claimed = conn.execute(
        update(deliveries)
        .where(d.id.in_(candidates.scalar_subquery()))
        .values(
            state="in_flight",
            lease_owner=worker,
            lease_expires_at=now + lease,
            attempts=d.attempts + 1,
            updated_at=now,
        )
        .returning(d.id, d.transaction_id, d.sink, d.attempts)
    ).all()
    if not claimed:
        return []
    txn_rows = conn.execute(
        select(transactions).where(transactions.c.id.in_([row[1] for row in claimed]))
    ).mappings()
    by_id = {row["id"]: row_transaction(row) for row in txn_rows}
    result = [Claimed(row[0], row[1], row[2], row[3], by_id[row[1]]) for row in claimed]
    result.sort(key=lambda c: c.delivery_id)
    return result


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
            .values(state="delivered", delivered_at=record.finished_at, **common)
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


def replay(
    conn: Connection,
    now: datetime,
    *,
    ids: Sequence[int] | None = None,
    dead: bool = False,
    sink: str | None = None,
) -> int:
    """Make dead (or, by id, any undelivered) deliveries due again; returns how many."""
    d = deliveries.c
    condition = d.state != "delivered"
    if ids is not None:
        condition = and_(condition, d.id.in_(list(ids)))
    if dead:
        condition = and_(condition, d.state == "dead")
    if sink is not None:
        condition = and_(condition, d.sink == sink)
    result = conn.execute(
        update(deliveries)
        .where(condition, d.state != "in_flight")
        .values(state="pending", attempts=0, next_attempt_at=now, updated_at=now)
    )
    return result.rowcount
