"""``pesabridge batches list|cut|show``: the file-drop sinks' batches."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from ..sinks.filedrop import FileDropSink
from ..store import batches as db
from .common import ConfigOption, DbOption, console, errors, load_or_exit, open_store

batches_app = typer.Typer(
    help="File-drop batches: what was cut, uploaded, or is waiting.", no_args_is_help=True
)


def _view(batch: db.BatchRow) -> dict[str, Any]:
    return {
        "id": batch.id,
        "sink": batch.sink,
        "account": batch.account,
        "period": batch.period.isoformat(),
        "sequence": batch.sequence,
        "file": batch.file_name,
        "encoder": batch.encoder,
        "entries": batch.entries,
        "size": batch.size,
        "sha256": batch.sha256,
        "closing_balance": batch.closing_balance,
        "trigger": batch.trigger,
        "state": batch.state,
        "attempts": batch.attempts,
        "next_attempt_at": batch.next_attempt_at.isoformat(),
        "last_error": batch.last_error,
        "created_at": batch.created_at.isoformat(),
        "uploaded_at": batch.uploaded_at.isoformat() if batch.uploaded_at else None,
    }


@batches_app.command("list")
def list_(
    config_path: ConfigOption = None,
    db_url: DbOption = None,
    sink: Annotated[str | None, typer.Option("--sink", help="Only this sink.")] = None,
    state: Annotated[str | None, typer.Option("--state", help="cut, failed or uploaded.")] = None,
    limit: Annotated[int, typer.Option("--limit")] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Batches, newest first."""
    store, _ = open_store(db_url, config_path)
    try:
        with store.read() as conn:
            rows = db.list_batches(conn, sink=sink, state=state, limit=limit)
    finally:
        store.close()
    if as_json:
        console.print_json(json.dumps([_view(b) for b in rows]))
        return
    table = Table(title="batches")
    for column in ("id", "sink", "file", "entries", "state", "attempts", "last error"):
        table.add_column(column)
    for b in rows:
        table.add_row(
            str(b.id),
            b.sink,
            b.file_name,
            str(b.entries),
            b.state,
            str(b.attempts),
            b.last_error or "",
        )
    console.print(table)


@batches_app.command()
def cut(
    sink_name: Annotated[str, typer.Argument(metavar="SINK", help="A file-drop sink.")],
    config_path: ConfigOption = None,
    db_url: DbOption = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be cut; change nothing.")
    ] = False,
) -> None:
    """Cut every due delivery of SINK into batches now (the worker uploads them)."""
    if config_path is None:
        errors.print("batches cut needs the configuration (-c) to know the sink")
        raise typer.Exit(2)
    config = load_or_exit(config_path)
    section = next((s for s in config.sinks if s.name == sink_name), None)
    if section is None or section.type != "file-drop":
        errors.print(f"no file-drop sink named {sink_name!r} in {config_path}")
        raise typer.Exit(2)
    sink = FileDropSink(section, base_dir=config.base_dir)  # type: ignore[arg-type]
    store, _ = open_store(db_url, config_path)
    try:
        result = sink.cutter.cut(store, trigger="manual", dry_run=dry_run)
    finally:
        store.close()
    verb = "would cut" if dry_run else "cut"
    for b in result.batches:
        console.print(
            f"{verb} {b.file_name}: {b.entries} entries, {b.size} bytes, sha256 {b.sha256}"
            + ("" if dry_run else f" (batch {b.batch_id})"),
            highlight=False,
        )
    for problem in result.refused:
        errors.print(f"not cut (dead-lettered): {problem}", highlight=False, markup=False)
    if not result.batches and not result.refused:
        console.print("nothing due")


@batches_app.command()
def show(
    batch_id: Annotated[int, typer.Argument(metavar="ID")],
    config_path: ConfigOption = None,
    db_url: DbOption = None,
    content: Annotated[
        bool, typer.Option("--content", help="Write the file's bytes to stdout.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """One batch: its file, state, deliveries (or, with --content, its bytes)."""
    store, _ = open_store(db_url, config_path)
    try:
        with store.read() as conn:
            found = db.get_batch(conn, batch_id)
    finally:
        store.close()
    if found is None:
        errors.print(f"no batch {batch_id}")
        raise typer.Exit(1)
    batch, members = found
    if content:
        sys.stdout.buffer.write(batch.content or b"")
        return
    view = _view(batch) | {"deliveries": members}
    if as_json:
        console.print_json(json.dumps(view))
        return
    for key, value in view.items():
        console.print(f"{key}: {value}", highlight=False, markup=False)
