"""Batches of a file-drop sink: cut (deliveries claimed into a fixed file), uploaded.

A batch is written once, with its bytes, in the same transaction that takes its
deliveries out of the outbox's reach (``in_flight``, leased to ``batch:<id>`` without an
expiry, so no delivery worker claims them). Uploading claims the batch under a lease; the
success marks the batch uploaded and every delivery in it delivered, in one transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, exists, func, insert, or_, select, update

from ..model import Transaction
from .rows import row_transaction
from .schema import attempts, batch_deliveries, batch_schedules, batches, deliveries, transactions


@dataclass(frozen=True, slots=True)
class Pending:
    """A delivery waiting for a batch, with its transaction."""

    delivery_id: int
    attempts: int
    transaction: Transaction


@dataclass(frozen=True, slots=True)
class BatchRow:
    """A batch as stored."""

    id: int
    sink: str
    provider: str
    account: str
    currency: str
    period: date
    sequence: int
    file_name: str
    encoder: str
    sha256: str
    size: int
    entries: int
    closing_balance: str | None
    trigger: str
    state: str
    attempts: int
    next_attempt_at: datetime
    lease_owner: str | None
    lease_expires_at: datetime | None
    last_error: str | None
    created_at: datetime
    uploaded_at: datetime | None
    content: bytes | None = None


_COLUMNS = [c for c in batches.c if c.name != "content"]


def _row(row: Any, content: bytes | None = None) -> BatchRow:
    values = {c.name: row._mapping[c.name] for c in _COLUMNS}
    return BatchRow(**values, content=content)


def _due(sink: str, now: datetime) -> Any:
    d = deliveries.c
    linked = exists().where(batch_deliveries.c.delivery_id == d.id)
    return and_(d.sink == sink, d.state == "pending", d.next_attempt_at <= now, ~linked)


def pending(
    conn: Connection,
    sink: str,
    now: datetime,
    *,
    before: datetime | None = None,
    limit: int | None = None,
) -> list[Pending]:
    """Due deliveries of ``sink`` not in a batch, oldest transaction first, locked."""
    d, t = deliveries.c, transactions.c
    condition = _due(sink, now)
    if before is not None:
        condition = and_(condition, t.occurred_at < before)
    query = (
        select(
            d.id.label("delivery_id"),
            d.attempts.label("delivery_attempts"),
            *[c for c in transactions.c if c.name != "id"],
        )
        .join(transactions, t.id == d.transaction_id)
        .where(condition)
        .order_by(t.occurred_at, d.id)
        .with_for_update(of=deliveries, skip_locked=True)
    )
    if limit is not None:
        query = query.limit(limit)
    result = []
    for row in conn.execute(query).mappings():
        result.append(Pending(row["delivery_id"], row["delivery_attempts"], row_transaction(row)))
    return result


def count_pending(conn: Connection, sink: str, now: datetime) -> int:
    return int(
        conn.execute(
            select(func.count()).select_from(deliveries).where(_due(sink, now))
        ).scalar_one()
    )


def next_sequence(conn: Connection, sink: str, account: str, period: date) -> int:
    b = batches.c
    top = conn.execute(
        select(func.max(b.sequence)).where(b.sink == sink, b.account == account, b.period == period)
    ).scalar_one()
    return int(top or 0) + 1


def last_closing(
    conn: Connection, sink: str, provider: str, account: str, currency: str
) -> str | None:
    """The closing balance of the sink's latest batch for this account."""
    b = batches.c
    return conn.execute(
        select(b.closing_balance)
        .where(b.sink == sink, b.provider == provider, b.account == account, b.currency == currency)
        .order_by(b.period.desc(), b.sequence.desc())
        .limit(1)
    ).scalar_one_or_none()


def insert_batch(
    conn: Connection,
    values: dict[str, Any],
    members: Sequence[int],
    now: datetime,
) -> int:
    """Store a cut batch and take its deliveries: returns the batch id."""
    batch_id = int(
        conn.execute(
            insert(batches)
            .values(**values, state="cut", attempts=0, next_attempt_at=now, created_at=now)
            .returning(batches.c.id)
        ).scalar_one()
    )
    conn.execute(
        insert(batch_deliveries), [{"delivery_id": m, "batch_id": batch_id} for m in members]
    )
    d = deliveries.c
    conn.execute(
        update(deliveries)
        .where(d.id.in_(list(members)))
        .values(
            state="in_flight",
            lease_owner=f"batch:{batch_id}",
            lease_expires_at=None,
            attempts=d.attempts + 1,
            updated_at=now,
        )
    )
    return batch_id


def refuse(conn: Connection, members: Sequence[int], error: str, now: datetime) -> None:
    """Dead-letter deliveries that cannot be put in a file (replayable once fixed)."""
    d = deliveries.c
    conn.execute(
        update(deliveries)
        .where(d.id.in_(list(members)))
        .values(state="dead", last_error=error, updated_at=now, attempts=d.attempts + 1)
    )


def claim_upload(
    conn: Connection, sink: str, worker: str, *, lease: timedelta, now: datetime
) -> BatchRow | None:
    """Lease the sink's oldest batch waiting for an upload (or whose uploader died)."""
    b = batches.c
    due = and_(
        b.sink == sink,
        b.state.in_(["cut", "failed"]),
        b.next_attempt_at <= now,
        or_(b.lease_expires_at.is_(None), b.lease_expires_at < now),
    )
    candidate = (
        select(b.id).where(due).order_by(b.id).limit(1).with_for_update(skip_locked=True)
    ).scalar_subquery()
    row = conn.execute(
        update(batches)
        .where(b.id == candidate)
        .values(lease_owner=worker, lease_expires_at=now + lease, attempts=b.attempts + 1)
        .returning(*_COLUMNS, b.content)
    ).first()
    if row is None:
        return None
    return _row(row, bytes(row._mapping["content"]))


def uploaded(conn: Connection, batch: BatchRow, worker: str, note: str, now: datetime) -> None:
    """The file is in place: the batch and all its deliveries are done, together."""
    b, d = batches.c, deliveries.c
    conn.execute(
        update(batches)
        .where(b.id == batch.id)
        .values(
            state="uploaded",
            uploaded_at=now,
            lease_owner=None,
            lease_expires_at=None,
            last_error=None,
        )
    )
    members = select(batch_deliveries.c.delivery_id).where(batch_deliveries.c.batch_id == batch.id)
    rows = conn.execute(
        select(d.id, d.attempts).where(d.id.in_(members), d.state != "delivered")
    ).all()
    if rows:
        conn.execute(
            insert(attempts),
            [
                {
                    "delivery_id": row[0],
                    "number": row[1],
                    "worker": worker,
                    "started_at": now,
                    "finished_at": now,
                    "outcome": "delivered",
                    "error": note,
                    "response": f"{batch.file_name} sha256:{batch.sha256}",
                }
                for row in rows
            ],
        )
    conn.execute(
        update(deliveries)
        .where(d.id.in_(members), d.state != "delivered")
        .values(
            state="delivered",
            delivered_at=now,
            updated_at=now,
            lease_owner=None,
            lease_expires_at=None,
            last_error=None,
            response=f"in {batch.file_name}",
        )
    )


def failed(
    conn: Connection, batch: BatchRow, worker: str, error: str, next_at: datetime, now: datetime
) -> None:
    """The upload failed: the same batch is tried again at ``next_at``."""
    b, d = batches.c, deliveries.c
    conn.execute(
        update(batches)
        .where(b.id == batch.id, b.lease_owner == worker, b.state != "uploaded")
        .values(
            state="failed",
            last_error=error,
            next_attempt_at=next_at,
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    members = select(batch_deliveries.c.delivery_id).where(batch_deliveries.c.batch_id == batch.id)
    conn.execute(
        update(deliveries)
        .where(d.id.in_(members), d.state == "in_flight")
        .values(last_error=f"upload of {batch.file_name} failed: {error}", updated_at=now)
    )


def last_fire(conn: Connection, sink: str) -> datetime | None:
    return conn.execute(
        select(batch_schedules.c.last_fire_at).where(batch_schedules.c.sink == sink)
    ).scalar_one_or_none()


def note_fire(conn: Connection, sink: str, fire: datetime) -> None:
    s = batch_schedules.c
    if not conn.execute(
        update(batch_schedules).where(s.sink == sink).values(last_fire_at=fire)
    ).rowcount:
        conn.execute(insert(batch_schedules).values(sink=sink, last_fire_at=fire))


def list_batches(
    conn: Connection, *, sink: str | None = None, state: str | None = None, limit: int = 100
) -> list[BatchRow]:
    b = batches.c
    query = select(*_COLUMNS).order_by(b.id.desc()).limit(limit)
    if sink is not None:
        query = query.where(b.sink == sink)
    if state is not None:
        query = query.where(b.state == state)
    return [_row(row) for row in conn.execute(query)]


def get_batch(conn: Connection, batch_id: int) -> tuple[BatchRow, list[int]] | None:
    b = batches.c
    row = conn.execute(select(*_COLUMNS, b.content).where(b.id == batch_id)).first()
    if row is None:
        return None
    members = conn.execute(
        select(batch_deliveries.c.delivery_id)
        .where(batch_deliveries.c.batch_id == batch_id)
        .order_by(batch_deliveries.c.delivery_id)
    ).scalars()
    return _row(row, bytes(row._mapping["content"])), list(members)
