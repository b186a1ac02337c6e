"""Dead letters grouped by sink and reason, and their "resolved" notes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, exists, func, select

from ..store import utcnow
from ..store.schema import dead_letter_resolutions, deliveries, transactions

SHOWN_PER_GROUP = 50


@dataclass
class Group:
    """Dead letters with the same sink, last status code and last error."""

    sink: str
    status: int | None
    error: str
    count: int
    first: datetime
    last: datetime
    items: list[dict[str, Any]] = field(default_factory=list)


def _resolved() -> Any:
    r = dead_letter_resolutions.c
    d = deliveries.c
    return exists().where(r.delivery_id == d.id, r.resolved_at >= d.updated_at)


def _in_group(sink: str, status: int | None, error: str) -> Any:
    d = deliveries.c
    return and_(
        d.state == "dead",
        d.sink == sink,
        d.last_status.is_(None) if status is None else d.last_status == status,
        func.coalesce(d.last_error, "") == error,
    )


def groups(conn: Connection, *, resolved: bool = False) -> list[Group]:
    """Unresolved dead letters (or, with ``resolved``, the resolved ones) by group, the
    largest group first, each with its newest deliveries."""
    d = deliveries.c
    which = _resolved() if resolved else ~_resolved()
    error = func.coalesce(d.last_error, "")
    rows = conn.execute(
        select(
            d.sink,
            d.last_status,
            error,
            func.count(),
            func.min(d.updated_at),
            func.max(d.updated_at),
        )
        .where(d.state == "dead", which)
        .group_by(d.sink, d.last_status, error)
        .order_by(func.count().desc())
    ).all()
    found = []
    for sink, status, err, count, first, last in rows:
        group = Group(sink, status, err, count, _aware(first), _aware(last))
        t = transactions.c
        group.items = [
            dict(r)
            for r in conn.execute(
                select(
                    d.id,
                    d.attempts,
                    d.updated_at,
                    t.id.label("transaction_id"),
                    t.receipt,
                    t.amount_minor,
                    t.currency,
                    t.account,
                )
                .join(transactions, t.id == d.transaction_id)
                .where(_in_group(sink, status, err), which)
                .order_by(d.updated_at.desc())
                .limit(SHOWN_PER_GROUP)
            ).mappings()
        ]
        found.append(group)
    return found


def _aware(value: Any) -> datetime:
    # min()/max() over a UTCDateTime column lose the column type on SQLite.
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    moment: datetime = value
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def group_ids(conn: Connection, sink: str, status: int | None, error: str) -> list[int]:
    """Every unresolved dead letter of one group."""
    d = deliveries.c
    return list(
        conn.execute(select(d.id).where(_in_group(sink, status, error), ~_resolved())).scalars()
    )


def resolve(conn: Connection, ids: Sequence[int], username: str, comment: str) -> int:
    """Note dead letters as resolved (by hand, elsewhere, or not to be posted); returns how
    many were dead. The note lapses if the delivery is replayed and dies again."""
    d = deliveries.c
    dead = list(conn.execute(select(d.id).where(d.id.in_(list(ids)), d.state == "dead")).scalars())
    now = utcnow()
    if dead:
        conn.execute(
            dead_letter_resolutions.insert(),
            [
                {"delivery_id": i, "username": username, "comment": comment, "resolved_at": now}
                for i in dead
            ],
        )
    return len(dead)


def resolutions(conn: Connection, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The latest note per delivery id."""
    r = dead_letter_resolutions.c
    found: dict[int, dict[str, Any]] = {}
    rows = conn.execute(
        select(dead_letter_resolutions).where(r.delivery_id.in_(list(ids))).order_by(r.id)
    ).mappings()
    for row in rows:
        found[row["delivery_id"]] = dict(row)
    return found
