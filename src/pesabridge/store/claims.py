"""The worker's hot path: claiming deliveries and recording outcomes, in few statements.

A worker claims and finishes thousands of deliveries a second. Each step here is one or
two statements per batch, compiled once per dialect and run with the driver
(:class:`~pesabridge.store.connector.Prepared`): SQLAlchemy's per-execution work (cache
keys, parameter and result processing) otherwise costs more than SQLite spends running
them. The guards are the same as ever: see :func:`pesabridge.store.outbox.finish`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, and_, bindparam, not_, or_, select, update

from ..model import Counterparty, Direction, Entry, MsisdnKind, Status, Transaction
from ..model.currency import minor_units
from .connector import Prepared, bind_time, prepared, read_time
from .rows import TRANSACTION_FIELDS
from .schema import attempts, deliveries, transactions

if TYPE_CHECKING:
    from .outbox import AttemptRecord, Claimed

CHUNK = 64
"""Ids per statement: ``IN`` lists have this many parameters, padded with id 0 (which
no row has), so one compiled statement serves every batch."""

_TXN = TRANSACTION_FIELDS
_ATTEMPT_COLUMNS = (
    "delivery_id",
    "number",
    "worker",
    "started_at",
    "finished_at",
    "outcome",
    "status_code",
    "error",
    "response",
    "unknown_outcome",
    "request_summary",
)
# Enum members by stored value: a dict lookup, cheaper than calling the enum.
_ENTRY = {member.value: member for member in Entry}
_DIRECTION = {member.value: member for member in Direction}
_STATUS = {member.value: member for member in Status}
_KIND = {member.value: member for member in MsisdnKind}


def _ids(count: int = CHUNK) -> list[Any]:
    return [bindparam(f"id_{i}") for i in range(count)]


def _id_params(chunk: Sequence[int]) -> dict[str, Any]:
    params = {f"id_{i}": value for i, value in enumerate(chunk)}
    for i in range(len(chunk), CHUNK):
        params[f"id_{i}"] = 0
    return params


def _chunks(values: Sequence[Any]) -> list[Sequence[Any]]:
    return [values[i : i + CHUNK] for i in range(0, len(values), CHUNK)]


def _due_select(part: str, sink_count: int | None) -> Any:
    """Due deliveries with their transactions, oldest first: ``pending`` or ``lapsed``
    (one index walk each, for SQLite) or ``due`` (both, locked and skipping rows other
    workers hold, for PostgreSQL)."""
    from .outbox import held_reversal, paused_sinks

    d, t = deliveries.c, transactions.c
    now: Any = bindparam("now")
    eligible = and_(d.sink.not_in(paused_sinks()), not_(held_reversal()))
    if sink_count is not None:
        eligible = and_(eligible, d.sink.in_([bindparam(f"sink_{i}") for i in range(sink_count)]))
    pending = and_(d.state == "pending", d.next_attempt_at <= now)
    lapsed = and_(d.state == "in_flight", d.lease_expires_at < now)
    due = {"pending": pending, "lapsed": lapsed, "due": or_(pending, lapsed)}[part]
    statement = (
        select(d.id, d.next_attempt_at, d.transaction_id, d.sink, d.attempts, *(t[c] for c in _TXN))
        .select_from(deliveries.join(transactions, t.id == d.transaction_id))
        .where(due, eligible)
        .order_by(d.next_attempt_at, d.id)
        .limit(bindparam("limit"))
    )
    if part == "due":
        statement = statement.with_for_update(skip_locked=True, of=deliveries)
    return statement


def _mark() -> Any:
    d = deliveries.c
    return (
        update(deliveries)
        .where(d.id.in_(_ids()))
        .values(
            state="in_flight",
            lease_owner=bindparam("worker"),
            lease_expires_at=bindparam("expires"),
            attempts=d.attempts + 1,
            updated_at=bindparam("now"),
        )
    )


def claim(
    conn: Connection,
    worker: str,
    *,
    limit: int,
    lease: timedelta,
    now: datetime,
    sinks: Sequence[str] | None = None,
) -> list[Claimed]:
    """See :func:`pesabridge.store.outbox.claim`."""
    from .outbox import Claimed

    if limit <= 0 or (sinks is not None and not sinks):
        return []
    dialect = conn.dialect.name
    as_time = bind_time(dialect)
    params: dict[str, Any] = {"now": as_time(now), "limit": limit}
    count = None if sinks is None else len(sinks)
    if sinks is not None:
        params.update({f"sink_{i}": name for i, name in enumerate(sinks)})
    if dialect == "sqlite":
        # The OR of the two due conditions defeats the (state, next_attempt_at) index:
        # SQLite would sort every pending row and test each for a held reversal. Two
        # index walks, merged here, instead. The write lock (BEGIN IMMEDIATE) is held,
        # so nothing changes between these reads and the update.
        pending = prepared(conn, f"claim.pending.{count}", lambda: _due_select("pending", count))
        lapsed = prepared(conn, f"claim.lapsed.{count}", lambda: _due_select("lapsed", count))
        rows = [*pending.rows(conn, params), *lapsed.rows(conn, params)]
        rows.sort(key=lambda r: (r[1], r[0]))
        del rows[limit:]
    else:
        # The rows stay locked (FOR UPDATE) until this transaction commits.
        due = prepared(conn, f"claim.due.{count}", lambda: _due_select("due", count))
        rows = due.rows(conn, params)
    if not rows:
        return []
    mark = prepared(conn, "claim.mark", _mark)
    marking = {"worker": worker, "expires": as_time(now + lease), "now": params["now"]}
    for chunk in _chunks([row[0] for row in rows]):
        mark.run(conn, {**marking, **_id_params(chunk)})
    as_aware = read_time(dialect)
    result = [
        Claimed(row[0], row[2], row[3], row[4] + 1, _transaction(row, 5, as_aware)) for row in rows
    ]
    result.sort(key=lambda c: c.delivery_id)
    return result


def _transaction(row: Sequence[Any], at: int, as_aware: Callable[[Any], Any]) -> Transaction:
    """The canonical transaction of the ``_TXN`` columns of ``row`` from ``at`` on."""
    (
        provider,
        account,
        receipt,
        entry,
        direction,
        amount,
        currency,
        occurred_at,
        msisdn,
        kind,
        name,
        reference,
        balance,
        status,
        related,
    ) = row[at : at + len(_TXN)]
    counterparty = None
    if msisdn is not None or name is not None:
        counterparty = Counterparty(
            msisdn=msisdn, msisdn_kind=_KIND[kind] if kind else None, name=name
        )
    units = -minor_units(currency)
    return Transaction.fast(
        provider,
        account or None,
        receipt,
        _ENTRY[entry],
        _DIRECTION[direction],
        Decimal(amount).scaleb(units),
        currency,
        as_aware(occurred_at),
        counterparty,
        reference,
        None if balance is None else Decimal(balance).scaleb(units),
        _STATUS[status],
        related,
    )


_COMMON: dict[str, Any] = {
    "last_status": bindparam("b_last_status"),
    "last_error": bindparam("b_last_error"),
    "response": bindparam("b_response"),
    "updated_at": bindparam("b_updated_at"),
    "lease_owner": None,
    "lease_expires_at": None,
}


def _delivered() -> Any:
    d = deliveries.c
    return (
        update(deliveries)
        .where(d.id == bindparam("b_id"), d.state != "delivered")
        .values(
            state="delivered",
            delivered_at=bindparam("b_delivered_at"),
            document_id=bindparam("b_document_id"),
            **_COMMON,
        )
    )


def _still_ours() -> tuple[Any, ...]:
    """The row is still this worker's claim of this attempt: a lapsed lease taken over by
    another worker, or a later attempt, leaves the row alone."""
    d = deliveries.c
    return (
        d.id == bindparam("b_id"),
        d.state == "in_flight",
        d.lease_owner == bindparam("b_worker"),
        d.attempts == bindparam("b_attempt"),
    )


def _undelivered() -> Any:
    return (
        update(deliveries)
        .where(*_still_ours())
        .values(state=bindparam("b_state"), next_attempt_at=bindparam("b_next_at"), **_COMMON)
    )


def finish_many(
    conn: Connection, finished: Sequence[tuple[Claimed, AttemptRecord, datetime | None]]
) -> list[bool]:
    """See :func:`pesabridge.store.outbox.finish_many`.

    No read of the rows' current state: each UPDATE carries its own guard, so a stale
    outcome changes nothing, and the rows changed are counted instead. When every guard
    held (the usual case) each attempt was recorded; otherwise the updates are undone to
    a savepoint and run again one at a time, to learn which guard failed.
    """
    if not finished:
        return []
    as_time = bind_time(conn.dialect.name)
    ended = [as_time(record.finished_at) for _c, record, _n in finished]
    cursor = conn.connection.cursor()
    try:
        cursor.executemany(
            _attempt_sql(conn.dialect.paramstyle),
            [
                (
                    claimed.delivery_id,
                    record.number,
                    record.worker,
                    as_time(record.started_at),
                    end,
                    record.outcome,
                    record.status_code,
                    record.error,
                    record.response,
                    record.unknown_outcome,
                    record.request_summary,
                )
                for (claimed, record, _next), end in zip(finished, ended, strict=True)
            ],
        )
        delivered_sql = prepared(conn, "finish.delivered", _delivered)
        undelivered_sql = prepared(conn, "finish.undelivered", _undelivered)
        # Each attempt's statement and parameters, in the caller's order.
        plan: list[tuple[Prepared, Any]] = []
        delivered: list[Any] = []
        others: list[Any] = []
        for (claimed, record, next_at), end in zip(finished, ended, strict=True):
            params = {
                "b_id": claimed.delivery_id,
                "b_last_status": record.status_code,
                "b_last_error": record.error,
                "b_response": record.response,
                "b_updated_at": end,
            }
            if record.outcome == "delivered":
                params.update(b_delivered_at=end, b_document_id=record.document_id)
                bound = delivered_sql.bind(params)
                delivered.append(bound)
                plan.append((delivered_sql, bound))
            else:
                params.update(
                    b_state="dead" if record.outcome == "dead" else "pending",
                    b_next_at=end if next_at is None else as_time(next_at),
                    b_worker=record.worker,
                    b_attempt=claimed.attempt,
                )
                bound = undelivered_sql.bind(params)
                others.append(bound)
                plan.append((undelivered_sql, bound))
        cursor.execute("SAVEPOINT finish_many")
        changed = 0
        if delivered:
            cursor.executemany(delivered_sql.sql, delivered)
            changed += cursor.rowcount
        if others:
            cursor.executemany(undelivered_sql.sql, others)
            changed += cursor.rowcount
        if changed == len(plan):
            cursor.execute("RELEASE SAVEPOINT finish_many")
            return [True] * len(plan)
        # Some guard failed (a lease taken over, a row delivered already): which ones.
        cursor.execute("ROLLBACK TO SAVEPOINT finish_many")
        cursor.execute("RELEASE SAVEPOINT finish_many")
        kept: list[bool] = []
        for statement, bound in plan:
            cursor.execute(statement.sql, bound)
            kept.append(cursor.rowcount == 1)
        return kept
    finally:
        cursor.close()


def _attempt_sql(paramstyle: str) -> str:
    """The attempt row's INSERT, its parameters in ``_ATTEMPT_COLUMNS`` order."""
    marker = "?" if paramstyle == "qmark" else "%s"
    return (
        f"INSERT INTO {attempts.name} ({', '.join(_ATTEMPT_COLUMNS)}) "
        f"VALUES ({', '.join([marker] * len(_ATTEMPT_COLUMNS))})"
    )


def _release() -> Any:
    d = deliveries.c
    return (
        update(deliveries)
        .where(*_still_ours())
        .values(
            state="pending",
            attempts=d.attempts - 1,
            lease_owner=None,
            lease_expires_at=None,
            updated_at=bindparam("b_now"),
        )
    )


def release(conn: Connection, worker: str, claimed: Sequence[Claimed], now: datetime) -> None:
    """Hand back deliveries claimed but never sent: pending again, due as before, and the
    claim's attempt not counted. Only rows the claim still holds are touched."""
    at = bind_time(conn.dialect.name)(now)
    prepared(conn, "release", _release).run_many(
        conn,
        [
            {"b_id": c.delivery_id, "b_worker": worker, "b_attempt": c.attempt, "b_now": at}
            for c in claimed
        ],
    )
