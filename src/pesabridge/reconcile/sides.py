"""Loading the sides of a reconciliation from the ledger, set-based.

Each function is one query over the account's period (never a query per transaction):
the ledger's transactions with how many file and callback sightings each has, the open
discrepancies, a statement file's rows in file order, the deliveries to a sink.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Row, String, and_, case, func, or_, select, type_coerce

from ..store.schema import deliveries, discrepancies, evidence, transactions

_CHUNK = 5000
_STREAM_CHUNK = 20_000

t = transactions.c


def _stream(conn: Connection, query: Any) -> Iterator[Any]:
    """Rows of ``query`` fetched in chunks: a million rows one ``fetchone`` at a time
    cost more than the query itself."""
    result = conn.execution_options(yield_per=_STREAM_CHUNK).execute(query)
    return itertools.chain.from_iterable(result.partitions())


def _scope(provider: str, account: str, start: datetime, end: datetime) -> Any:
    return and_(
        t.provider == provider,
        t.account == account,
        t.occurred_at >= start,
        t.occurred_at < end,
    )


LedgerRow = tuple[int, str, str, int, str, Any, str, int, int]
"""(id, receipt, entry, amount_minor, currency, occurred_at, status, file sightings,
callback sightings); ``occurred_at`` as the driver returns it (see :func:`moment`)."""


def moment(value: Any) -> datetime:
    """A time read without type processing: SQLite's naive-UTC text (as
    :func:`~pesabridge.store.connector.bind_time` writes it), or the driver's aware
    datetime (PostgreSQL)."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    assert isinstance(value, datetime)
    return value.astimezone(UTC)


def ledger_rows(
    conn: Connection, provider: str, account: str, start: datetime, end: datetime
) -> Iterator[LedgerRow]:
    """Every transaction of the account in ``[start, end)`` with how many statement and
    callback sightings it has, in id order.

    Two streamed queries merged by id: the period's transactions, and the sightings
    counted per transaction over the same id range (the ledger allocates ids in
    ascending order, so a period's transactions sit in one range). Times come back
    untyped: converting a million of them is most of what typing them would cost, and
    most rows need only their day (see :func:`moment`).
    """
    e = evidence.c
    scope = _scope(provider, account, start, end)
    low, high = conn.execute(select(func.min(t.id), func.max(t.id)).where(scope)).one()
    if low is None:
        return
    txns = _stream(
        conn,
        select(
            t.id,
            t.receipt,
            t.entry,
            t.amount_minor,
            t.currency,
            type_coerce(t.occurred_at, String),
            t.status,
        )
        # the id range lets SQLite walk the table in id order instead of sorting
        .where(scope, t.id.between(low, high))
        .order_by(t.id),
    )
    counts = iter(
        _stream(
            conn,
            select(
                e.transaction_id,
                func.sum(case((e.kind == "file", 1), else_=0)),
                func.sum(case((e.kind == "callback", 1), else_=0)),
            )
            .where(e.transaction_id.between(low, high))
            .group_by(e.transaction_id)
            .order_by(e.transaction_id),
        )
    )
    current = next(counts, None)
    for txn_id, receipt, entry, amount, currency, when, status in txns:
        while current is not None and current[0] < txn_id:
            current = next(counts, None)
        if current is not None and current[0] == txn_id:
            yield txn_id, receipt, entry, amount, currency, when, status, current[1], current[2]
        else:
            yield txn_id, receipt, entry, amount, currency, when, status, 0, 0


def open_discrepancies(
    conn: Connection, provider: str, account: str, start: datetime, end: datetime
) -> list[Row[Any]]:
    """Open discrepancies of the period's transactions, with the transaction's receipt,
    entry, amount and time."""
    d = discrepancies.c
    query = (
        select(
            d.id,
            d.transaction_id,
            d.evidence_id,
            d.field,
            d.recorded,
            d.observed,
            t.receipt,
            t.entry,
            t.amount_minor,
            t.currency,
            t.occurred_at,
            evidence.c.kind,
        )
        .select_from(
            discrepancies.join(transactions, t.id == d.transaction_id).outerjoin(
                evidence, evidence.c.id == d.evidence_id
            )
        )
        .where(d.status == "open", _scope(provider, account, start, end))
        .order_by(d.id)
    )
    return list(conn.execute(query))


def statement_rows(conn: Connection, file_id: int) -> Iterator[tuple[Any, ...]]:
    """A statement file's rows in file order: (evidence id, line, direction, amount,
    running balance, status, time untyped (see :func:`moment`))."""
    e = evidence.c
    query = (
        select(
            e.id,
            e.line,
            t.direction,
            t.amount_minor,
            t.balance_after_minor,
            t.status,
            type_coerce(t.occurred_at, String),
        )
        .select_from(evidence.join(transactions, t.id == e.transaction_id))
        .where(e.file_id == file_id, e.line.is_not(None))
        .order_by(e.line)
    )
    yield from _stream(conn, query)


def observed_amounts(conn: Connection, file_id: int) -> list[Row[Any]]:
    """For a file's rows whose amount disagreed with the ledger (the callback came first
    and said otherwise): evidence id, the amount the row stated (text, as the
    discrepancy recorded it) and the currency."""
    d, e = discrepancies.c, evidence.c
    query = (
        select(d.evidence_id, d.observed, t.currency)
        .select_from(
            discrepancies.join(evidence, e.id == d.evidence_id).join(
                transactions, t.id == d.transaction_id
            )
        )
        .where(d.field == "amount", e.file_id == file_id)
    )
    return list(conn.execute(query))


def receipts_at(
    conn: Connection, file_id: int, lines: Sequence[int]
) -> dict[int, tuple[str, datetime | None]]:
    """The receipts and times of a few lines of a statement file."""
    if not lines:
        return {}
    e = evidence.c
    query = (
        select(e.line, t.receipt, t.occurred_at)
        .select_from(evidence.join(transactions, t.id == e.transaction_id))
        .where(e.file_id == file_id, e.line.in_(sorted(set(lines))))
    )
    return {line: (receipt, at) for line, receipt, at in conn.execute(query)}


def orphans(
    conn: Connection, provider: str, account: str, start: datetime, end: datetime
) -> list[Row[Any]]:
    """Charges without their payment and reversals without their original (by
    ``related_receipt``; the original may be older than the period)."""
    other = transactions.alias("other")
    o = other.c
    missing = ~(
        select(o.id)
        .where(
            o.receipt == t.related_receipt,
            o.provider == t.provider,
            o.account == t.account,
            o.entry != t.entry,
        )
        .exists()
    )
    query = (
        select(
            t.id, t.receipt, t.entry, t.related_receipt, t.amount_minor, t.currency, t.occurred_at
        )
        .where(
            _scope(provider, account, start, end),
            t.entry.in_(["charge", "reversal"]),
            or_(t.related_receipt.is_(None), missing),
        )
        .order_by(t.id)
    )
    return list(conn.execute(query))


def details(conn: Connection, ids: Sequence[int]) -> dict[int, Row[Any]]:
    """Reference, MSISDN and kind of a few transactions (for the match rules)."""
    found: dict[int, Row[Any]] = {}
    wanted = sorted(set(ids))
    for begin in range(0, len(wanted), _CHUNK):
        chunk = wanted[begin : begin + _CHUNK]
        for row in conn.execute(
            select(t.id, t.reference, t.msisdn, t.msisdn_kind, t.related_receipt).where(
                t.id.in_(chunk)
            )
        ):
            found[row.id] = row  # type: ignore[assignment]
    return found


def sink_deliveries(
    conn: Connection,
    provider: str,
    account: str,
    start: datetime,
    end: datetime,
    sink: str | None,
) -> list[Row[Any]]:
    """Deliveries of the period's transactions (to ``sink``, or to every sink)."""
    dc = deliveries.c
    query = (
        select(
            dc.id.label("delivery_id"),
            dc.sink,
            dc.state,
            dc.document_id,
            t.id,
            t.provider,
            t.account,
            t.receipt,
            t.entry,
            t.direction,
            t.amount_minor,
            t.currency,
            t.occurred_at,
            t.reference,
            t.msisdn,
            t.msisdn_kind,
        )
        .select_from(deliveries.join(transactions, t.id == dc.transaction_id))
        .where(_scope(provider, account, start, end))
        .order_by(dc.id)
    )
    if sink is not None:
        query = query.where(dc.sink == sink)
    return list(conn.execute(query))


def receives_callbacks(conn: Connection, provider: str, account: str) -> bool:
    """Whether any callback sighting exists for the account (ever)."""
    e = evidence.c
    query = (
        select(e.id)
        .select_from(evidence.join(transactions, t.id == e.transaction_id))
        .where(e.kind == "callback", t.provider == provider, t.account == account)
        .limit(1)
    )
    return conn.execute(query).first() is not None
