"""Backfill: a statement row whose callback never came, routed like any transaction.

The statement row is already in the ledger (ingesting the statement recorded it, and the
file source's routes may already have given it outbox rows). Backfilling marks it
(``transactions.origin`` ``file`` -> ``backfill``) and gives it an outbox row for every
sink the account's *callback* routes would have sent it to, with ``INSERT ... ON
CONFLICT DO NOTHING`` on the outbox's one-row-per-(transaction, sink) key: a sink that
already has it keeps its one row, so nothing is ever delivered twice, however often
reconciliation runs, and a callback that arrives late only adds evidence.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, func, select, update

from ..store import Router
from ..store.connector import insert_ignore
from ..store.rows import row_transaction
from ..store.schema import deliveries, transactions

_CHUNK = 2000


def backfill(
    conn: Connection,
    ids: Sequence[int],
    route: Router | None,
    now: datetime,
    *,
    mark: bool = True,
) -> int:
    """Mark ``ids`` backfilled (unless not ``mark``: a held callback being released) and
    add their missing outbox rows; returns rows added."""
    t, d = transactions.c, deliveries.c
    added = 0
    for begin in range(0, len(ids), _CHUNK):
        chunk = list(ids[begin : begin + _CHUNK])
        if mark:
            conn.execute(
                update(transactions)
                .where(t.id.in_(chunk), t.origin == "file")
                .values(origin="backfill")
            )
        if route is None:
            continue
        wanted = []
        for row in conn.execute(select(transactions).where(t.id.in_(chunk))).mappings():
            for sink in route(row_transaction(row)):
                wanted.append(
                    {
                        "transaction_id": row["id"],
                        "sink": sink,
                        "state": "pending",
                        "attempts": 0,
                        "next_attempt_at": now,
                        "created_at": now,
                        "updated_at": now,
                    }
                )
        if not wanted:
            continue
        count = select(func.count()).select_from(deliveries).where(d.transaction_id.in_(chunk))
        before = conn.execute(count).scalar_one()
        conn.execute(insert_ignore(conn.dialect.name, deliveries), wanted)
        added += conn.execute(count).scalar_one() - before
    return added
