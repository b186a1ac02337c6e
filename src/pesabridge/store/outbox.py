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
    bindparam,
    exists,
    insert,
    not_,
    or_,
    select,
    true,
    update,
)

from ..model import Transaction
from .rows import idempotency_key, row_transaction
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
    d = deliveries.c
    due = or_(
        and_(d.state == "pending", d.next_attempt_at <= now),
        and_(d.state == "in_flight", d.lease_expires_at < now),
    )
    eligible = and_(d.sink.not_in(paused_sinks()), not_(held_reversal()))
    if sinks is not None:
        eligible = and_(eligible, d.sink.in_(list(sinks)))
    chosen: Any
    if conn.dialect.name == "sqlite":
        # The OR above defeats the (state, next_attempt_at) index: SQLite would sort every
        # pending row and test each for a held reversal. Two index walks, merged, instead.
        # The write lock (BEGIN IMMEDIATE) is held, so nothing changes in between.
        pending = (
            select(d.id, d.next_attempt_at)
            .where(d.state == "pending", d.next_attempt_at <= now, eligible)
            .order_by(d.next_attempt_at, d.id)
            .limit(limit)
        )
        lapsed = (
            select(d.id, d.next_attempt_at)
            .where(d.state == "in_flight", d.lease_expires_at < now, eligible)
            .order_by(d.next_attempt_at, d.id)
            .limit(limit)
        )
        rows = sorted([*conn.execute(pending), *conn.execute(lapsed)], key=lambda r: (r[1], r[0]))
        chosen = [row[0] for row in rows[:limit]]
        if not chosen:
            return []
    else:
        chosen = (
            select(d.id)
            .where(due, eligible)
            .order_by(d.next_attempt_at, d.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
            .scalar_subquery()
        )
    claimed = conn.execute(
        update(deliveries)
        .where(d.id.in_(chosen))
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
    if not finished:
        return []
    conn.execute(
        insert(attempts),
        [
            {
                "delivery_id": claimed.delivery_id,
                "number": record.number,
                "worker": record.worker,
                "started_at": record.started_at,
                "finished_at": record.finished_at,
                "outcome": record.outcome,
                "status_code": record.status_code,
                "error": record.error,
                "response": record.response,
                "unknown_outcome": record.unknown_outcome,
                "request_summary": record.request_summary,
            }
            for claimed, record, _next in finished
        ],
    )
    d = deliveries.c
    current = {
        row.id: row
        for row in conn.execute(
            select(d.id, d.state, d.lease_owner, d.attempts).where(
                d.id.in_([claimed.delivery_id for claimed, _r, _n in finished])
            )
        )
    }
    kept: list[bool] = []
    delivered: list[dict[str, Any]] = []
    others: list[dict[str, Any]] = []
    for claimed, record, next_at in finished:
        row = current.get(claimed.delivery_id)
        params = {
            "b_id": claimed.delivery_id,
            "b_last_status": record.status_code,
            "b_last_error": record.error,
            "b_response": record.response,
            "b_updated_at": record.finished_at,
        }
        if record.outcome == "delivered":
            ok = row is not None and row.state != "delivered"
            if ok:
                params.update(b_delivered_at=record.finished_at, b_document_id=record.document_id)
                delivered.append(params)
        else:
            ok = (
                row is not None
                and row.state == "in_flight"
                and row.lease_owner == record.worker
                and row.attempts == claimed.attempt
            )
            if ok:
                params.update(
                    b_state="dead" if record.outcome == "dead" else "pending",
                    b_next_attempt_at=next_at or record.finished_at,
                    b_worker=record.worker,
                    b_attempt=claimed.attempt,
                )
                others.append(params)
        kept.append(ok)
    common: dict[str, Any] = {
        "last_status": bindparam("b_last_status"),
        "last_error": bindparam("b_last_error"),
        "response": bindparam("b_response"),
        "updated_at": bindparam("b_updated_at"),
        "lease_owner": None,
        "lease_expires_at": None,
    }
    if delivered:
        conn.execute(
            update(deliveries)
            .where(d.id == bindparam("b_id"), d.state != "delivered")
            .values(
                state="delivered",
                delivered_at=bindparam("b_delivered_at"),
                document_id=bindparam("b_document_id"),
                **common,
            ),
            delivered,
        )
    if others:
        conn.execute(
            update(deliveries)
            .where(
                d.id == bindparam("b_id"),
                d.state == "in_flight",
                d.lease_owner == bindparam("b_worker"),
                d.attempts == bindparam("b_attempt"),
            )
            .values(
                state=bindparam("b_state"),
                next_attempt_at=bindparam("b_next_attempt_at"),
                **common,
            ),
            others,
        )
    return kept


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
