"""The file ledger: every statement file seen, by content, with its outcome and rejects."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from ..formats.base import Reject, StatementHeader
from .schema import files, rejects


@dataclass(frozen=True, slots=True)
class FileRecord:
    """One row of the file ledger."""

    id: int
    sha256: str
    source: str
    name: str
    status: str
    rows_read: int
    new: int
    known: int
    rejected: int
    error: str | None
    started_at: datetime
    finished_at: datetime | None


def find(conn: Connection, sha256: str) -> FileRecord | None:
    """The ledger entry for a file's content, if it was ever seen."""
    row = conn.execute(select(files).where(files.c.sha256 == sha256)).mappings().first()
    return _record(row) if row else None


def start(
    conn: Connection,
    *,
    sha256: str,
    source: str,
    name: str,
    path: str | None,
    size: int,
    mtime: datetime | None,
    fmt: str | None,
    now: datetime,
) -> int:
    """Register a file as being ingested (or restart a failed or interrupted one)."""
    existing = find(conn, sha256)
    if existing is not None:
        conn.execute(
            update(files)
            .where(files.c.id == existing.id)
            .values(
                status="ingesting",
                error=None,
                started_at=now,
                finished_at=None,
                name=name,
                path=path,
                source=source,
            )
        )
        return existing.id
    return int(
        conn.execute(
            insert(files)
            .values(
                sha256=sha256,
                source=source,
                name=name,
                path=path,
                size=size,
                mtime=mtime,
                format=fmt,
                status="ingesting",
                rows_read=0,
                new=0,
                known=0,
                rejected=0,
                started_at=now,
            )
            .returning(files.c.id)
        ).scalar_one()
    )


def progress(
    conn: Connection, file_id: int, *, rows_read: int, new: int, known: int, rejected: int
) -> None:
    """Add a committed batch's counts to the file's totals."""
    c = files.c
    conn.execute(
        update(files)
        .where(c.id == file_id)
        .values(
            rows_read=c.rows_read + rows_read,
            new=c.new + new,
            known=c.known + known,
            rejected=c.rejected + rejected,
        )
    )


def finish(
    conn: Connection,
    file_id: int,
    *,
    status: str,
    now: datetime,
    error: str | None = None,
    header: StatementHeader | None = None,
) -> None:
    """Mark a file done or failed."""
    values: dict[str, Any] = {"status": status, "finished_at": now, "error": error}
    if header is not None:
        values["header"] = json.dumps(_header_dict(header))
    conn.execute(update(files).where(files.c.id == file_id).values(**values))


def reset_counts(conn: Connection, file_id: int) -> None:
    """Zero a file's counts before it is read again from the start."""
    conn.execute(
        update(files).where(files.c.id == file_id).values(rows_read=0, new=0, known=0, rejected=0)
    )
    conn.execute(rejects.delete().where(rejects.c.file_id == file_id))


def add_rejects(
    conn: Connection, items: Sequence[Reject], file_id: int | None, now: datetime
) -> None:
    """Quarantine rejected input with its reason."""
    if not items:
        return
    conn.execute(
        insert(rejects),
        [
            {
                "file_id": file_id,
                "source": r.source,
                "line": r.line,
                "field": r.field,
                "reason": r.reason,
                "raw": r.raw,
                "created_at": now,
            }
            for r in items
        ],
    )


def _header_dict(header: StatementHeader) -> dict[str, Any]:
    return {
        "provider": header.provider,
        "account": header.account,
        "holder": header.holder,
        "period_start": header.period_start.isoformat() if header.period_start else None,
        "period_end": header.period_end.isoformat() if header.period_end else None,
        "opening_balance": None if header.opening_balance is None else str(header.opening_balance),
        "closing_balance": None if header.closing_balance is None else str(header.closing_balance),
        "currency": header.currency,
    }


def _record(row: Any) -> FileRecord:
    return FileRecord(
        id=row["id"],
        sha256=row["sha256"],
        source=row["source"],
        name=row["name"],
        status=row["status"],
        rows_read=row["rows_read"],
        new=row["new"],
        known=row["known"],
        rejected=row["rejected"],
        error=row["error"],
        started_at=row["started_at"],
        finished_at=row["finished_at"],
    )


def set_origin(
    conn: Connection, file_id: int, *, path: str, size: int, mtime: datetime | None
) -> None:
    """Record where a fetched file came from (its remote path, size and mtime there)."""
    conn.execute(
        update(files).where(files.c.id == file_id).values(path=path, size=size, mtime=mtime)
    )
