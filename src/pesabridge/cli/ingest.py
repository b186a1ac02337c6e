"""``pesabridge ingest``: statement files into the ledger, with a progress bar."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.progress import TaskID
from rich.table import Table

from ..config import ComponentConfig, Config
from ..pipeline import IngestSummary, ingest_file
from ..routing import Routing, no_route
from ..store import Router, Store
from .common import (
    ConfigOption,
    DbOption,
    FormatOptionsOption,
    byte_progress,
    console,
    errors,
    open_store,
    read_format_options,
)


def _router(
    config: Config | None, source: str | None
) -> tuple[str, Router, ComponentConfig | None]:
    if config is None:
        return source or "cli", no_route, None
    file_sources = [s.name for s in config.sources if hasattr(s, "format")]
    if source is None and len(file_sources) == 1:
        source = file_sources[0]
    if source is None:
        errors.print("no --source given: transactions are recorded but routed to no sink")
        return "cli", no_route, None
    section = next((s for s in config.sources if s.name == source), None)
    if section is None:
        errors.print(f"no source named {source!r} in the config")
        raise typer.Exit(2)
    return source, Routing(config.routes).router_for(source), section


def ingest(
    files: Annotated[list[Path], typer.Argument(help="Statement files.", show_default=False)],
    fmt: Annotated[str, typer.Option("--format", "-f", help="Format name or auto.")] = "auto",
    config_path: ConfigOption = None,
    db: DbOption = None,
    source: Annotated[
        str | None,
        typer.Option(
            help="Treat the files as coming from this configured source "
            "(its routes decide the sinks)."
        ),
    ] = None,
    format_options: FormatOptionsOption = None,
    force: Annotated[
        bool, typer.Option(help="Read a file again even if already ingested.")
    ] = False,
) -> None:
    """Record statement files in the ledger; each file once, by content."""
    store, config = open_store(db, config_path)
    source_name, route, section = _router(config, source)
    options = read_format_options(format_options)
    if section is not None and fmt == "auto" and options is None:
        # the files are treated as this source's: read them as it would
        fmt = getattr(section, "format", "auto")
        options = getattr(section, "format_options", None) or None
    summaries: list[IngestSummary] = []
    try:
        for path in files:
            if not path.is_file():
                errors.print(f"{path}: no such file", highlight=False)
                raise typer.Exit(2)
            with byte_progress() as bar:
                task = bar.add_task(path.name, total=path.stat().st_size)

                def advance(done: int, task: TaskID = task) -> None:
                    bar.update(task, completed=done)

                summary = ingest_file(
                    store,
                    path,
                    fmt=fmt,
                    source=source_name,
                    route=route,
                    force=force,
                    format_options=options,
                    progress=advance,
                )
            summaries.append(summary)
            if summary.file_id is not None and not summary.skipped and not summary.error:
                _reconcile(store, summary.file_id, path, config)
            for reject in summary.rejects:
                errors.print(str(reject), markup=False, highlight=False)
            if summary.rejected > len(summary.rejects):
                errors.print(f"... and {summary.rejected - len(summary.rejects)} more rejects")
            if summary.error:
                errors.print(f"[bold red]{summary.error}[/]", highlight=False)
    finally:
        store.close()
    _print_summary(summaries)
    if any(s.error for s in summaries):
        raise typer.Exit(2 if all(s.error for s in summaries) else 1)
    if any(s.rejected for s in summaries):
        raise typer.Exit(1)


def _reconcile(store: Store, file_id: int, path: Path, config: Config | None) -> None:
    """Reconcile the days the statement covers (``reconciliation.auto``); a failure is
    reported and does not change the ingest's outcome."""
    from ..reconcile import ReconcileError, reconcile_after_ingest

    try:
        report = reconcile_after_ingest(store, file_id, config, path, trigger="ingest")
    except ReconcileError as exc:
        errors.print(f"reconciliation after ingest: {exc}", highlight=False)
        return
    if report is not None:
        console.print(
            f"reconciled {report.account} {report.start} to {report.end}: "
            f"{report.open_exceptions} open exception(s), {len(report.repaired)} backfilled "
            f"(details: pesabridge reconcile --account {report.account} --from {report.start} "
            f"--to {report.end})",
            highlight=False,
        )


def _print_summary(summaries: list[IngestSummary]) -> None:
    table = Table(title="ingest")
    for column in (
        "file",
        "format",
        "rows read",
        "new",
        "already known",
        "conflicting",
        "rejected",
        "note",
    ):
        table.add_column(
            column, justify="right" if column not in ("file", "format", "note") else "left"
        )
    for s in summaries:
        note = "already ingested (same content)" if s.skipped else ("failed" if s.error else "")
        table.add_row(
            s.name,
            s.format or "-",
            str(s.rows_read),
            str(s.new),
            str(s.known),
            str(s.conflicting),
            str(s.rejected),
            note,
        )
    console.print(table)
