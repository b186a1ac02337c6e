"""Runs, day summaries, exceptions and resolutions in the ledger (``recon_*`` tables).

An exception is stored under the key of its finding (what and where, never which run),
so running the same reconciliation again finds the same row: an open exception stays
open (and is seen again), a resolved one stays resolved and is not reported again, and
one no longer found is marked cleared.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, Row, and_, delete, func, insert, select, update

from ..store.rows import from_minor
from ..store.schema import recon_days, recon_exceptions, recon_resolutions, recon_runs
from .records import CLEARED, OPEN, RESOLVED, DaySummary, Finding, ReconException

_CHUNK = 2000

Tally = dict[tuple[date, str], list[int]]
"""(day, outcome) -> [count, amount in minor units]."""


def start_run(
    conn: Connection,
    *,
    provider: str,
    account: str,
    start: date,
    end: date,
    trigger: str,
    statement: str | None,
    backoffice: str | None,
    now: datetime,
) -> int:
    """Record that a run began; returns its id."""
    return int(
        conn.execute(
            insert(recon_runs)
            .values(
                provider=provider,
                account=account,
                period_start=start,
                period_end=end,
                trigger=trigger,
                statement=statement,
                backoffice=backoffice,
                open_exceptions=0,
                started_at=now,
            )
            .returning(recon_runs.c.id)
        ).scalar_one()
    )


def finish_run(
    conn: Connection,
    run_id: int,
    *,
    open_exceptions: int,
    summary: Mapping[str, Any],
    now: datetime,
) -> None:
    conn.execute(
        update(recon_runs)
        .where(recon_runs.c.id == run_id)
        .values(open_exceptions=open_exceptions, summary=json.dumps(summary), finished_at=now)
    )


def save_days(
    conn: Connection,
    run_id: int,
    *,
    provider: str,
    account: str,
    start: date,
    end: date,
    currency: str,
    tally: Tally,
) -> None:
    """Replace the period's day summaries with this run's."""
    c = recon_days.c
    conn.execute(
        delete(recon_days).where(
            c.provider == provider, c.account == account, c.day >= start, c.day <= end
        )
    )
    rows = [
        {
            "provider": provider,
            "account": account,
            "day": day,
            "outcome": outcome,
            "count": count,
            "amount_minor": amount,
            "currency": currency,
            "run_id": run_id,
        }
        for (day, outcome), (count, amount) in sorted(tally.items())
        if start <= day <= end
    ]
    if rows:
        conn.execute(insert(recon_days), rows)


def save_findings(
    conn: Connection,
    run_id: int,
    *,
    provider: str,
    account: str,
    start: date,
    end: date,
    findings: Sequence[Finding],
    checked: Iterable[str],
    now: datetime,
) -> None:
    """Insert new findings, refresh known ones, clear open ones of the ``checked`` kinds
    that this run no longer finds in its period. Resolved ones stay resolved."""
    c = recon_exceptions.c
    by_key = {f.key: f for f in findings}
    known: dict[str, tuple[int, str]] = {}
    keys = list(by_key)
    for begin in range(0, len(keys), _CHUNK):
        chunk = keys[begin : begin + _CHUNK]
        for row in conn.execute(select(c.key, c.id, c.status).where(c.key.in_(chunk))):
            known[row.key] = (row.id, row.status)
    fresh = [
        {
            "key": f.key,
            "provider": provider,
            "account": account,
            "day": f.day,
            "kind": f.kind,
            "status": f.status,
            "transaction_id": f.transaction_id,
            "receipt": f.receipt,
            "sink": f.sink,
            "file_id": f.file_id,
            "line": f.line,
            "amount_minor": f.amount_minor,
            "currency": f.currency,
            "detail": f.detail,
            "first_run_id": run_id,
            "last_run_id": run_id,
            "first_seen_at": now,
            "last_seen_at": now,
        }
        for f in findings
        if f.key not in known
    ]
    if fresh:
        conn.execute(insert(recon_exceptions), fresh)
    seen_again = [
        {"b_id": ident, "b_status": by_key[key].status, "b_detail": by_key[key].detail}
        for key, (ident, status) in known.items()
        if status != RESOLVED
    ]
    if seen_again:
        from sqlalchemy import bindparam

        conn.execute(
            update(recon_exceptions)
            .where(c.id == bindparam("b_id"))
            .values(
                status=bindparam("b_status"),
                detail=bindparam("b_detail"),
                last_run_id=run_id,
                last_seen_at=now,
            ),
            seen_again,
        )
    resolved_ids = [ident for ident, status in known.values() if status == RESOLVED]
    for begin in range(0, len(resolved_ids), _CHUNK):
        conn.execute(
            update(recon_exceptions)
            .where(c.id.in_(resolved_ids[begin : begin + _CHUNK]))
            .values(last_run_id=run_id, last_seen_at=now)
        )
    # open before, not found now: cleared (a late callback arrived, a row was replayed)
    conn.execute(
        update(recon_exceptions)
        .where(
            c.provider == provider,
            c.account == account,
            c.day >= start,
            c.day <= end,
            c.status == OPEN,
            c.kind.in_(list(checked)),
            c.last_run_id != run_id,
        )
        .values(status=CLEARED, last_seen_at=now)
    )


def _exception(row: Row[Any]) -> ReconException:
    currency = row.currency
    amount = (
        None
        if row.amount_minor is None
        else from_minor(row.amount_minor, currency)
        if currency
        else Decimal(row.amount_minor)
    )
    return ReconException(
        id=row.id,
        provider=row.provider,
        account=row.account,
        day=row.day,
        kind=row.kind,
        status=row.status,
        detail=row.detail,
        transaction_id=row.transaction_id,
        receipt=row.receipt,
        sink=row.sink,
        file_id=row.file_id,
        line=row.line,
        amount=amount,
        currency=currency,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        resolved_at=row.resolved_at,
        resolved_by=row.resolved_by,
        comment=row.comment,
    )


def exceptions(
    conn: Connection,
    *,
    provider: str | None = None,
    account: str | None = None,
    day: date | None = None,
    start: date | None = None,
    end: date | None = None,
    status: str | None = OPEN,
    kinds: Sequence[str] | None = None,
    transaction_id: int | None = None,
    limit: int | None = 100,
    offset: int = 0,
) -> list[ReconException]:
    """Exceptions, by day then id; ``status=None`` (or ``"all"``) for every status."""
    c = recon_exceptions.c
    conditions: list[Any] = []
    if provider is not None:
        conditions.append(c.provider == provider)
    if account is not None:
        conditions.append(c.account == account)
    if day is not None:
        conditions.append(c.day == day)
    if start is not None:
        conditions.append(c.day >= start)
    if end is not None:
        conditions.append(c.day <= end)
    if status not in (None, "all"):
        conditions.append(c.status == status)
    if kinds is not None:
        conditions.append(c.kind.in_(list(kinds)))
    if transaction_id is not None:
        conditions.append(c.transaction_id == transaction_id)
    query = select(recon_exceptions).where(and_(*conditions)).order_by(c.day, c.id).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return [_exception(row) for row in conn.execute(query)]


def exception_status(conn: Connection, exception_id: int) -> str | None:
    return conn.execute(
        select(recon_exceptions.c.status).where(recon_exceptions.c.id == exception_id)
    ).scalar()


def resolve(conn: Connection, exception_id: int, *, user: str, comment: str, now: datetime) -> None:
    """Close an exception with a comment, and keep the audit row."""
    conn.execute(
        update(recon_exceptions)
        .where(recon_exceptions.c.id == exception_id)
        .values(status=RESOLVED, resolved_at=now, resolved_by=user, comment=comment)
    )
    conn.execute(
        insert(recon_resolutions).values(
            exception_id=exception_id,
            action="resolve",
            by_user=user,
            comment=comment,
            created_at=now,
        )
    )


def resolutions(conn: Connection, exception_id: int) -> list[Row[Any]]:
    """The audit trail of one exception, oldest first."""
    r = recon_resolutions.c
    return list(
        conn.execute(select(recon_resolutions).where(r.exception_id == exception_id).order_by(r.id))
    )


def day_summaries(
    conn: Connection,
    *,
    account: str | None = None,
    start: date | None = None,
    end: date | None = None,
) -> list[DaySummary]:
    """Per provider, account and day: counts and sums per outcome, and open exceptions."""
    c = recon_days.c
    query = select(recon_days)
    if account is not None:
        query = query.where(c.account == account)
    if start is not None:
        query = query.where(c.day >= start)
    if end is not None:
        query = query.where(c.day <= end)
    grouped: dict[tuple[str, str, date], dict[str, Any]] = {}
    for row in conn.execute(query.order_by(c.provider, c.account, c.day, c.outcome)):
        entry = grouped.setdefault(
            (row.provider, row.account, row.day),
            {"currency": row.currency, "counts": {}, "amounts": {}, "run_id": row.run_id},
        )
        entry["counts"][row.outcome] = row.count
        entry["amounts"][row.outcome] = from_minor(row.amount_minor, row.currency)
        entry["run_id"] = max(entry["run_id"], row.run_id)
    e = recon_exceptions.c
    open_query = (
        select(e.provider, e.account, e.day, func.count())
        .where(e.status == OPEN)
        .group_by(e.provider, e.account, e.day)
    )
    if account is not None:
        open_query = open_query.where(e.account == account)
    if start is not None:
        open_query = open_query.where(e.day >= start)
    if end is not None:
        open_query = open_query.where(e.day <= end)
    open_counts = {(p, a, d): n for p, a, d, n in conn.execute(open_query)}
    return [
        DaySummary(
            provider=provider,
            account=acct,
            day=day,
            currency=value["currency"],
            counts=value["counts"],
            amounts=value["amounts"],
            open_exceptions=open_counts.get((provider, acct, day), 0),
            run_id=value["run_id"],
        )
        for (provider, acct, day), value in grouped.items()
    ]
