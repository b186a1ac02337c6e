"""Operations: ``status``, ``deliveries``, ``replay``."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from .common import ConfigOption, DbOption, console, errors, open_store

STATES = ("pending", "in_flight", "delivered", "dead")


def status(
    config_path: ConfigOption = None,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Counts per state and per sink, files, rejects, discrepancies, source health."""
    store, _ = open_store(db, config_path)
    try:
        counts = store.status()
    finally:
        store.close()
    if as_json:
        console.print_json(json.dumps(counts, default=str))
        return
    console.print(f"ledger: {store.display_url}")
    console.print(
        f"transactions: {counts['transactions']}  evidence: {counts['evidence']}  "
        f"rejects: {counts['rejects']}  open discrepancies: {counts['open_discrepancies']}"
    )
    files = ", ".join(f"{k}: {v}" for k, v in sorted(counts["files"].items())) or "none"
    console.print(f"files: {files}")
    table = Table(title="deliveries per sink")
    table.add_column("sink")
    for state in STATES:
        table.add_column(state, justify="right")
    for sink, per_state in sorted(counts["deliveries"].items()):
        table.add_row(sink, *(str(per_state.get(state, 0)) for state in STATES))
    console.print(table)
    if counts["sources"]:
        sources = Table(title="sources")
        for column in ("source", "last poll", "last success", "last error"):
            sources.add_column(column)
        for row in counts["sources"]:
            error = (
                f"{row['last_error_at']:%Y-%m-%d %H:%M:%S} {row['last_error']}"
                if row["last_error"]
                else ""
            )
            sources.add_row(
                row["name"], _when(row["last_poll_at"]), _when(row["last_success_at"]), error
            )
        console.print(sources)


def _when(value: object) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M:%S}Z"


def deliveries(
    config_path: ConfigOption = None,
    db: DbOption = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only dead or retrying.")] = False,
    state: Annotated[str | None, typer.Option(help="Only this state.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """List deliveries with their state, attempts and last error."""
    if state is not None and state not in STATES:
        errors.print(f"unknown state {state!r}; one of {', '.join(STATES)}")
        raise typer.Exit(2)
    store, _ = open_store(db, config_path)
    try:
        views = store.deliveries(failed=failed, state=state, limit=limit)
    finally:
        store.close()
    table = Table(title="deliveries")
    for column in ("id", "sink", "state", "attempts", "transaction", "next attempt", "last error"):
        table.add_column(column)
    for v in views:
        table.add_row(
            str(v.id),
            v.sink,
            v.state,
            str(v.attempts),
            v.transaction.describe(),
            _when(v.next_attempt_at) if v.state == "pending" else "",
            (f"{v.last_status} " if v.last_status else "") + (v.last_error or ""),
        )
    console.print(table)


def replay(
    ids: Annotated[
        list[int] | None, typer.Argument(help="Delivery ids.", show_default=False)
    ] = None,
    dead: Annotated[bool, typer.Option("--dead", help="Every dead letter.")] = False,
    sink: Annotated[str | None, typer.Option(help="Only this sink's.")] = None,
    config_path: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Make deliveries due again (dead letters after the cause is fixed)."""
    if not ids and not dead:
        errors.print("say which: delivery ids, or --dead")
        raise typer.Exit(2)
    store, _ = open_store(db, config_path)
    try:
        count = store.replay(ids=ids or None, dead=dead, sink=sink)
    finally:
        store.close()
    console.print(f"{count} deliveries queued again")
