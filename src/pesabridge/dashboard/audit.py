"""The audit log: who did what to what, from where; shown on the dashboard's Audit page."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select

from ..store import Store, utcnow
from ..store.schema import audit_log


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    username: str
    action: str
    target: str | None
    detail: dict[str, Any]
    client: str | None


def write(
    conn: Connection,
    username: str,
    action: str,
    target: str | None = None,
    detail: dict[str, Any] | None = None,
    client: str | None = None,
) -> None:
    """Record an action in the caller's transaction (it commits with the action itself)."""
    conn.execute(
        audit_log.insert().values(
            at=utcnow(),
            username=username,
            action=action,
            target=target,
            detail=json.dumps(detail or {}, sort_keys=True, default=str),
            client=(client or "")[:100] or None,
        )
    )


def record(store: Store, username: str, action: str, target: str | None = None, **kw: Any) -> None:
    """Record an action in a transaction of its own."""
    client = kw.pop("client", None)
    with store.write() as conn:
        write(conn, username, action, target, kw, client)


def entries(store: Store, *, limit: int = 100, offset: int = 0) -> tuple[list[AuditEntry], int]:
    """Newest first, and how many there are in all."""
    a = audit_log.c
    with store.read() as conn:
        total = conn.execute(select(func.count()).select_from(audit_log)).scalar_one()
        rows = conn.execute(
            select(audit_log).order_by(a.id.desc()).limit(limit).offset(offset)
        ).mappings()
        return [
            AuditEntry(
                r["id"],
                r["at"],
                r["username"],
                r["action"],
                r["target"],
                json.loads(r["detail"] or "{}"),
                r["client"],
            )
            for r in rows
        ], total
