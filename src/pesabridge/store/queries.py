"""Read models for the CLI, the dashboard and tests: counts, listings, details."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from ..model import Transaction
from .exchanges import Journal, journal_of
from .outbox import held_reversal
from .rows import idempotency_key, row_transaction
from .schema import (
    attempts,
    deliveries,
    discrepancies,
    evidence,
    files,
    rejects,
    sink_state,
    source_state,
    transactions,
)


@dataclass(frozen=True, slots=True)
class DeliveryView:
    """A delivery as listed by ``pesabridge deliveries``."""

    id: int
    sink: str
    state: str
    attempts: int
    next_attempt_at: datetime
    last_status: int | None
    last_error: str | None
    transaction: Transaction
    document_id: str | None = None
    """The back office's id for the posted document (the sink's response mapping)."""
    delivered_at: datetime | None = None

    @property
    def idempotency_key(self) -> str:
        """The key the sink sends for this delivery."""
        return idempotency_key(self.transaction.identity, self.sink)


@dataclass(frozen=True, slots=True)
class AttemptView:
    number: int
    worker: str
    started_at: datetime
    finished_at: datetime
    outcome: str
    status_code: int | None
    error: str | None
    response: str | None
    unknown_outcome: bool
    request_summary: str | None


@dataclass(frozen=True, slots=True)
class DeliveryDetail:
    """A delivery explained: what it is, every attempt, and what happens next."""

    view: DeliveryView
    attempts: list[AttemptView]
    paused: bool
    """Its sink is paused."""
    held: bool
    """A reversal waiting for its original's delivery to this sink."""
    lease_owner: str | None
    lease_expires_at: datetime | None
    exchange: Journal | None = None
    """Where it stands with an ISO 8583 host (the sink's journal), if that sink kept one."""


@dataclass(frozen=True, slots=True)
class SinkStateView:
    name: str
    paused: bool
    reason: str | None
    updated_at: datetime | None
    counts: dict[str, int]


def status_counts(conn: Connection) -> dict[str, Any]:
    """Counts for ``pesabridge status``: transactions, deliveries per sink and state, etc."""
    per_sink: dict[str, dict[str, int]] = {}
    rows = conn.execute(
        select(deliveries.c.sink, deliveries.c.state, func.count()).group_by(
            deliveries.c.sink, deliveries.c.state
        )
    )
    for sink, state, count in rows:
        per_sink.setdefault(sink, {})[state] = count
    return {
        "transactions": conn.execute(select(func.count()).select_from(transactions)).scalar_one(),
        "evidence": conn.execute(select(func.count()).select_from(evidence)).scalar_one(),
        "files": dict(
            conn.execute(select(files.c.status, func.count()).group_by(files.c.status)).all()
        ),
        "rejects": conn.execute(select(func.count()).select_from(rejects)).scalar_one(),
        "open_discrepancies": conn.execute(
            select(func.count()).select_from(discrepancies).where(discrepancies.c.status == "open")
        ).scalar_one(),
        "deliveries": per_sink,
        "sources": [
            dict(row)
            for row in conn.execute(select(source_state).order_by(source_state.c.name)).mappings()
        ],
    }


def _view(row: Any) -> DeliveryView:
    d = deliveries.c
    return DeliveryView(
        id=row[d.id],
        sink=row[d.sink],
        state=row[d.state],
        attempts=row[d.attempts],
        next_attempt_at=row[d.next_attempt_at],
        last_status=row[d.last_status],
        last_error=row[d.last_error],
        transaction=row_transaction({c.name: row[c] for c in transactions.c}),
        document_id=row[d.document_id],
        delivered_at=row[d.delivered_at],
    )


def list_deliveries(
    conn: Connection,
    *,
    failed: bool = False,
    state: str | None = None,
    limit: int = 100,
    sink: str | None = None,
    receipt: str | None = None,
    since: datetime | None = None,
) -> list[DeliveryView]:
    """Deliveries, newest first; ``failed`` means dead or retrying after an error;
    ``since`` compares with the delivery's last change."""
    d = deliveries.c
    query = select(deliveries, transactions).join(
        transactions, transactions.c.id == d.transaction_id
    )
    if failed:
        query = query.where(
            (d.state == "dead") | ((d.state == "pending") & (d.last_error.is_not(None)))
        )
    if state is not None:
        query = query.where(d.state == state)
    if sink is not None:
        query = query.where(d.sink == sink)
    if receipt is not None:
        query = query.where(transactions.c.receipt == receipt)
    if since is not None:
        query = query.where(d.updated_at >= since)
    query = query.order_by(d.id.desc()).limit(limit)
    return [_view(row) for row in conn.execute(query).mappings()]


def delivery_detail(conn: Connection, delivery_id: int) -> DeliveryDetail | None:
    """One delivery with its attempts in order, whether it is paused or held."""
    d = deliveries.c
    row = (
        conn.execute(
            select(deliveries, transactions, held_reversal().label("held"))
            .join(transactions, transactions.c.id == d.transaction_id)
            .where(d.id == delivery_id)
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    a = attempts.c
    tries = [
        AttemptView(
            number=r.number,
            worker=r.worker,
            started_at=r.started_at,
            finished_at=r.finished_at,
            outcome=r.outcome,
            status_code=r.status_code,
            error=r.error,
            response=r.response,
            unknown_outcome=bool(r.unknown_outcome),
            request_summary=r.request_summary,
        )
        for r in conn.execute(select(attempts).where(a.delivery_id == delivery_id).order_by(a.id))
    ]
    paused = conn.execute(
        select(sink_state.c.paused).where(sink_state.c.name == row[d.sink])
    ).scalar()
    return DeliveryDetail(
        view=_view(row),
        attempts=tries,
        paused=bool(paused),
        held=bool(row["held"]) and row[d.state] == "pending",
        lease_owner=row[d.lease_owner],
        lease_expires_at=row[d.lease_expires_at],
        exchange=journal_of(conn, delivery_id),
    )


def sink_states(conn: Connection) -> dict[str, SinkStateView]:
    """Sinks with deliveries or a recorded state, by name."""
    counts: dict[str, dict[str, int]] = {}
    rows = conn.execute(
        select(deliveries.c.sink, deliveries.c.state, func.count()).group_by(
            deliveries.c.sink, deliveries.c.state
        )
    )
    for sink, state, count in rows:
        counts.setdefault(sink, {})[state] = count
    result = {
        name: SinkStateView(name, False, None, None, per_state)
        for name, per_state in counts.items()
    }
    for r in conn.execute(select(sink_state)):
        result[r.name] = SinkStateView(
            r.name, bool(r.paused), r.reason, r.updated_at, counts.get(r.name, {})
        )
    return dict(sorted(result.items()))


def transaction_by_identity(
    conn: Connection, provider: str, account: str, receipt: str, entry: str
) -> tuple[int, Transaction] | None:
    """The recorded transaction with this identity, if any."""
    t = transactions.c
    row = (
        conn.execute(
            select(transactions).where(
                t.receipt == receipt, t.entry == entry, t.provider == provider, t.account == account
            )
        )
        .mappings()
        .first()
    )
    return (row["id"], row_transaction(row)) if row else None
