"""Files seen by file sources, keyed by (source, path, size, mtime) and linked to content.

The file ledger (:mod:`pesabridge.store.files`) knows each *content* once, by sha256.
This table knows each *sighting* of a file at a source: the same path, size and mtime
is never fetched twice, a file that failed is never retried while it stays the same,
and a changed file (new size or mtime) is a new key, fetched and ingested as new.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from .schema import files, remote_files

FINAL = ("done", "skipped", "failed")
"""States after which a key is not fetched again."""


@dataclass(frozen=True, slots=True)
class RemoteKey:
    """Where a file was and what it looked like there."""

    source: str
    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True, slots=True)
class RemoteFileRecord:
    id: int
    key: RemoteKey
    status: str
    reason: str | None
    sha256: str | None
    file_id: int | None


@dataclass(frozen=True, slots=True)
class FileView:
    """One line of ``pesabridge files``: a file's state, counts and reason."""

    source: str
    name: str
    path: str | None
    status: str
    rows_read: int
    accepted: int
    rejected: int
    reason: str | None
    when: datetime | None
    file_id: int | None


def _where(key: RemoteKey) -> Any:
    c = remote_files.c
    return (
        (c.source == key.source)
        & (c.path == key.path)
        & (c.size == key.size)
        & (c.mtime_ns == key.mtime_ns)
    )


def lookup(conn: Connection, key: RemoteKey) -> RemoteFileRecord | None:
    """What is known about this key, if anything."""
    row = conn.execute(select(remote_files).where(_where(key))).mappings().first()
    if row is None:
        return None
    return RemoteFileRecord(
        id=row["id"],
        key=key,
        status=row["status"],
        reason=row["reason"],
        sha256=row["sha256"],
        file_id=row["file_id"],
    )


def begin(conn: Connection, key: RemoteKey, now: datetime) -> int:
    """Mark a key as being fetched (a crash leaves it so, and it is fetched again)."""
    existing = lookup(conn, key)
    if existing is not None:
        conn.execute(
            update(remote_files)
            .where(remote_files.c.id == existing.id)
            .values(status="fetching", reason=None, updated_at=now)
        )
        return existing.id
    return int(
        conn.execute(
            insert(remote_files)
            .values(
                source=key.source,
                path=key.path,
                size=key.size,
                mtime_ns=key.mtime_ns,
                status="fetching",
                first_seen_at=now,
                updated_at=now,
            )
            .returning(remote_files.c.id)
        ).scalar_one()
    )


def finish(
    conn: Connection,
    row_id: int,
    *,
    status: str,
    now: datetime,
    reason: str | None = None,
    sha256: str | None = None,
    file_id: int | None = None,
) -> None:
    """Record a key's outcome: done, skipped (content known) or failed (with the reason)."""
    values: dict[str, Any] = {"status": status, "reason": reason, "updated_at": now}
    if sha256 is not None:
        values["sha256"] = sha256
    if file_id is not None:
        values["file_id"] = file_id
    conn.execute(update(remote_files).where(remote_files.c.id == row_id).values(**values))


def list_files(
    conn: Connection, *, source: str | None = None, status: str | None = None, limit: int = 100
) -> list[FileView]:
    """The file ledger for people: ingested content, and sightings that failed before
    any content was read (too large, refused by the server), newest first."""
    f = files.c
    query = select(files)
    if source is not None:
        query = query.where(f.source == source)
    if status is not None:
        query = query.where(f.status == status)
    views = [
        FileView(
            source=row["source"],
            name=row["name"],
            path=row["path"],
            status=row["status"],
            rows_read=row["rows_read"],
            accepted=row["new"] + row["known"],
            rejected=row["rejected"],
            reason=row["error"],
            when=row["finished_at"] or row["started_at"],
            file_id=row["id"],
        )
        for row in conn.execute(query.order_by(f.id.desc()).limit(limit)).mappings()
    ]
    r = remote_files.c
    orphans = select(remote_files).where(r.file_id.is_(None), r.status == "failed")
    if source is not None:
        orphans = orphans.where(r.source == source)
    if status not in (None, "failed"):
        orphans = orphans.where(r.id.is_(None))
    for row in conn.execute(orphans.order_by(r.id.desc()).limit(limit)).mappings():
        views.append(
            FileView(
                source=row["source"],
                name=row["path"].rsplit("/", 1)[-1],
                path=row["path"],
                status="failed",
                rows_read=0,
                accepted=0,
                rejected=0,
                reason=row["reason"],
                when=row["updated_at"],
                file_id=None,
            )
        )
    far_past = datetime.min
    views.sort(key=lambda v: v.when.replace(tzinfo=None) if v.when else far_past, reverse=True)
    return views[:limit]
