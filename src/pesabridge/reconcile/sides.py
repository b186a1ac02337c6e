"""Loading the sides of a reconciliation from the ledger, set-based.

Each function is one query over the account's period (never a query per transaction):
the ledger's transactions with how many file and callback sightings each has, the open
discrepancies, a statement file's rows in file order, the deliveries to a sink.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, case, func, or_, select

from ..store.schema import deliveries, discrepancies, evidence, transactions

_CHUNK = 5000

t = transactions.c


def _scope(provider: str, account: str, start: datetime, end: datetime) -> Any:
    return and_(
        t.provider == provider,
        t.account == account,
        t.occurred_at >= start,
        t.occurred_at < end,
    )


def ledger_rows(
    conn: Connection, provider: str, account: str, start: datetime, end: datetime
) -> Iterator[Row[Any]]:
    """Every transaction of the account in ``[start, end)`` with ``files`` and
    ``callbacks``: how many statement and callback sightings it has.

    One grouped join, streamed: the caller keeps what it needs of each row.
    """
    e = evidence.c
    query = (
        select(
            t.id,
            t.receipt,
            t.entry,
            t.direction,
            t.amount_minor,
            t.currency,
            t.occurred_at,
            t.status,
            t.origin,
            t.related_receipt,
            func.sum(case((e.kind == "file", 1), else_=0)).label("files"),
            func.sum(case((e.kind == "callback", 1), else_=0)).label("callbacks"),
        )
        .select_from(transactions.join(evidence, e.transaction_id == t.id))
        .where(_scope(provider, account, start, end))
        .group_by(t.id)
    )
    result = conn.execution_options(yield_per=10_000).execute(query)
    yield from result  # type: ignore[misc]


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


def statement_rows(conn: Connection, file_id: int) -> list[Row[Any]]:
    """A statement file's rows in file order: evidence id, line, and the transaction's
    direction, amount, running balance, status, receipt, entry and time."""
    e = evidence.c
    query = (
        select(
            e.id,
            e.line,
            t.direction,
            t.amount_minor,
            t.balance_after_minor,
            t.status,
            t.receipt,
            t.entry,
            t.occurred_at,
            t.currency,
        )
        .select_from(evidence.join(transactions, t.id == e.transaction_id))
        .where(e.file_id == file_id, e.line.is_not(None))
        .order_by(e.line)
    )
    return list(conn.execution_options(yield_per=10_000).execute(query))


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


def receipts_at(conn: Connection, file_id: int, lines: Sequence[int]) -> dict[int, str]:
    """The receipts of a few lines of a statement file."""
    if not lines:
        return {}
    e = evidence.c
    query = (
        select(e.line, t.receipt)
        .select_from(evidence.join(transactions, t.id == e.transaction_id))
        .where(e.file_id == file_id, e.line.in_(sorted(set(lines))))
    )
    return {line: receipt for line, receipt in conn.execute(query)}


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
