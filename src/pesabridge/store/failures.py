"""Failed attempts: payments a provider reports as not having happened.

An STK push the customer cancelled (ResultCode 1032), a Daraja Result with a non-zero
ResultCode, Airtel ``TF``, MTN ``FAILED``: no money moved and there is no receipt, so
they never become transactions and are never posted. They are kept here against the
provider's request id so a person (or the back office, later) can see why a payment a
customer started did not arrive. A retried callback is stored once.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, select

from ..formats.base import FailedAttempt
from .connector import insert_ignore
from .schema import failed_attempts


@dataclass(frozen=True, slots=True)
class FailedAttemptRow:
    """One recorded failed attempt."""

    id: int
    source: str
    provider: str
    account: str | None
    request_id: str | None
    code: str | None
    reason: str
    created_at: datetime


def fingerprint(source: str, item: FailedAttempt) -> str:
    """The same failure reported twice (a provider's retry) has the same fingerprint.

    By the provider's request id and code when there is one, else by the exact body.
    """
    if item.request_id:
        key = f"{item.provider}\0{item.request_id}\0{item.code or ''}".encode()
    else:
        key = b"raw\0" + source.encode() + b"\0" + item.raw
    return hashlib.sha256(key).hexdigest()


def add_failed_attempts(
    conn: Connection,
    items: Sequence[FailedAttempt],
    *,
    source: str,
    account: str | None,
    now: datetime,
) -> int:
    """Record failed attempts in the caller's transaction; returns how many were new."""
    new = 0
    statement = insert_ignore(conn.dialect.name, failed_attempts).returning(failed_attempts.c.id)
    for item in items:
        inserted = conn.execute(
            statement,
            {
                "source": source,
                "provider": item.provider,
                "account": account,
                "request_id": item.request_id,
                "code": item.code,
                "reason": item.reason,
                "request": item.source,
                "fingerprint": fingerprint(source, item),
                "raw": item.raw,
                "created_at": now,
            },
        ).scalar()
        new += inserted is not None
    return new


def list_failed_attempts(conn: Connection, *, limit: int = 100) -> list[FailedAttemptRow]:
    """Failed attempts, newest first."""
    c = failed_attempts.c
    rows = conn.execute(select(failed_attempts).order_by(c.id.desc()).limit(limit)).mappings()
    return [
        FailedAttemptRow(
            id=row["id"],
            source=row["source"],
            provider=row["provider"],
            account=row["account"],
            request_id=row["request_id"],
            code=row["code"],
            reason=row["reason"],
            created_at=row["created_at"],
        )
        for row in rows
    ]
