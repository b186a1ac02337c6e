"""``pesabridge failed-attempts``: payments providers reported as not having happened."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from ..store.failures import list_failed_attempts
from .common import ConfigOption, DbOption, console, open_store


def failed_attempts(
    config_path: ConfigOption = None,
    db: DbOption = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """STK pushes the customer cancelled, Results with a non-zero code, Airtel TF, MTN
    FAILED: recorded against their request, never posted."""
    store, _ = open_store(db, config_path)
    try:
        with store.read() as conn:
            rows = list_failed_attempts(conn, limit=limit)
    finally:
        store.close()
    table = Table(title="failed attempts")
    for column in ("id", "when", "source", "provider", "account", "request", "code", "reason"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            str(row.id),
            f"{row.created_at:%Y-%m-%d %H:%M:%S}Z",
            row.source,
            row.provider,
            row.account or "",
            row.request_id or "",
            row.code or "",
            row.reason,
        )
    console.print(table)
