"""The ISO 8583 sink's journal in a table of its own, out of ``attempts``.

Until now the journal was a row in ``attempts`` numbered 0 by worker ``iso8583
exchange``, so every listing of attempts showed a bogus "attempt 0". Upgrading moves
each such row into ``sink_exchanges`` (its JSON state unchanged, version 1) and deletes
it from ``attempts``; downgrading moves them back. Rows are moved in chunks so a large
ledger is not read into memory at once.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from pesabridge.store.types import Id, UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

_NUMBER = 0
_WORKER = "iso8583 exchange"
_UNRESOLVED = ("sent", "reversing")
_CHUNK = 1000

# The tables as this revision knows them (not pesabridge.store.schema, which moves on).
_meta = sa.MetaData()
_deliveries = sa.Table("deliveries", _meta, sa.Column("id", Id), sa.Column("sink", sa.String))
_attempts = sa.Table(
    "attempts",
    _meta,
    sa.Column("id", Id),
    sa.Column("delivery_id", Id),
    sa.Column("number", sa.Integer),
    sa.Column("worker", sa.String),
    sa.Column("started_at", UTCDateTime),
    sa.Column("finished_at", UTCDateTime),
    sa.Column("outcome", sa.String),
    sa.Column("status_code", sa.Integer),
    sa.Column("response", sa.Text),
    sa.Column("unknown_outcome", sa.Boolean),
    sa.Column("request_summary", sa.Text),
)
_exchanges = sa.Table(
    "sink_exchanges",
    _meta,
    sa.Column("delivery_id", Id),
    sa.Column("sink", sa.String),
    sa.Column("phase", sa.String),
    sa.Column("mti", sa.String),
    sa.Column("stan", sa.Integer),
    sa.Column("rrn", sa.String),
    sa.Column("state", sa.Text),
    sa.Column("version", sa.Integer),
    sa.Column("created_at", UTCDateTime),
    sa.Column("updated_at", UTCDateTime),
)


def _chunks(conn: sa.Connection, query: sa.Select[Any], key: Any) -> Iterator[Sequence[Any]]:
    """``query``'s rows in chunks, paged on the unique ``key`` (no OFFSET scans)."""
    last: Any = None
    while True:
        page = query if last is None else query.where(key > last)
        rows = conn.execute(page.order_by(key).limit(_CHUNK)).all()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


def upgrade() -> None:
    op.create_table(
        "sink_exchanges",
        sa.Column("delivery_id", Id, nullable=False),
        sa.Column("sink", sa.String(length=100), nullable=False),
        sa.Column("phase", sa.String(length=16), nullable=False),
        sa.Column("mti", sa.String(length=4), nullable=False),
        sa.Column("stan", sa.Integer(), nullable=False),
        sa.Column("rrn", sa.String(length=64), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_sink_exchanges_delivery_id_deliveries"),
        ),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_sink_exchanges")),
    )
    conn = op.get_bind()
    a, d = _attempts.c, _deliveries.c
    journal = sa.and_(a.number == _NUMBER, a.worker == _WORKER)
    query = (
        sa.select(a.id, a.delivery_id, d.sink, a.response, a.started_at, a.finished_at)
        .join(_deliveries, d.id == a.delivery_id)
        .where(journal)
    )
    seen: set[int] = set()
    for rows in _chunks(conn, query, a.id):
        moved = []
        for row in rows:
            # The old journal kept the lowest id per delivery (a racing second row was
            # deleted in its own transaction); keep that one should two have survived.
            if row.delivery_id in seen:
                continue
            seen.add(row.delivery_id)
            state = json.loads(row.response)
            moved.append(
                {
                    "delivery_id": row.delivery_id,
                    "sink": row.sink,
                    "phase": state["phase"],
                    "mti": state["mti"],
                    "stan": int(state["stan"]),
                    "rrn": state["rrn"],
                    "state": row.response,
                    "version": 1,
                    "created_at": row.started_at,
                    "updated_at": row.finished_at,
                }
            )
        if moved:
            conn.execute(_exchanges.insert(), moved)
    conn.execute(_attempts.delete().where(journal))


def _summary(state: dict[str, Any]) -> str:
    # What pesabridge 0009's journal row said in its request summary.
    text = f"{state['mti']} STAN {int(state['stan']):06} RRN {state['rrn'].strip()}"
    text += f" sent {state['sent_at']}"
    repeats = int(state.get("repeats") or 0)
    if state["phase"] == "reversing" and state.get("reversal_stan") is not None:
        text += f"; reversing with STAN {int(state['reversal_stan']):06} ({repeats} repeats)"
    elif state["phase"] == "sent" and repeats:
        text += f" ({repeats} repeats)"
    if state.get("code") is not None:
        text += f"; last code {state['code']}"
    return text


def downgrade() -> None:
    conn = op.get_bind()
    j = _exchanges.c
    query = sa.select(j.delivery_id, j.state, j.created_at, j.updated_at)
    for rows in _chunks(conn, query, j.delivery_id):
        back = []
        for row in rows:
            state = json.loads(row.state)
            code = state.get("code")
            back.append(
                {
                    "delivery_id": row.delivery_id,
                    "number": _NUMBER,
                    "worker": _WORKER,
                    "started_at": row.created_at,
                    "finished_at": row.updated_at,
                    "outcome": state["phase"],
                    "status_code": int(code) if code and str(code).isdigit() else None,
                    "response": row.state,
                    "unknown_outcome": state["phase"] in _UNRESOLVED,
                    "request_summary": _summary(state),
                }
            )
        conn.execute(_attempts.insert(), back)
    op.drop_table("sink_exchanges")
