"""Read models for the CLI, the dashboard and tests: counts, listings, details."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from ..model import Transaction
from .rows import idempotency_key, row_transaction
from .schema import deliveries, discrepancies, evidence, files, rejects, source_state, transactions


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

    @property
    def idempotency_key(self) -> str:
        """The key the sink sends for this delivery."""
        return idempotency_key(self.transaction.identity, self.sink)


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


def list_deliveries(
    conn: Connection, *, failed: bool = False, state: str | None = None, limit: int = 100
) -> list[DeliveryView]:
    """Deliveries, newest first; ``failed`` means dead or retrying after an error."""
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
    query = query.order_by(d.id.desc()).limit(limit)
    views = []
    for row in conn.execute(query).mappings():
        views.append(
            DeliveryView(
                id=row[d.id],
                sink=row[d.sink],
                state=row[d.state],
                attempts=row[d.attempts],
                next_attempt_at=row[d.next_attempt_at],
                last_status=row[d.last_status],
                last_error=row[d.last_error],
                transaction=row_transaction({c.name: row[c] for c in transactions.c}),
            )
        )
    return views


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
