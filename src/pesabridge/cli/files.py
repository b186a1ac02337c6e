"""``pesabridge fetch`` (poll one file source once) and ``pesabridge files`` (the ledger)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress, TaskID
from rich.table import Table

from ..pipeline import IngestSummary
from ..registry import source_class
from ..routing import Routing
from ..sources.base import SourceContext
from ..sources.poller import FilePoller
from ..sources.remotefs import RemoteConfigError, RemoteEntry, RemoteError
from ..store import remote as remote_ledger
from .common import ConfigOption, DbOption, byte_progress, console, errors, open_store


class _Bars:
    """Rich progress bars: one per file, downloading then ingesting."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.tasks: dict[str, TaskID] = {}

    def _task(self, entry: RemoteEntry, stage: str) -> TaskID:
        key = f"{stage}:{entry.path}"
        if key not in self.tasks:
            self.tasks[key] = self.progress.add_task(
                f"{stage} {entry.display_name}", total=entry.size
            )
        return self.tasks[key]

    def downloading(self, entry: RemoteEntry, done: int) -> None:
        self.progress.update(self._task(entry, "download"), completed=done)

    def ingesting(self, entry: RemoteEntry, done: int, total: int) -> None:
        self.progress.update(self._task(entry, "ingest"), completed=done, total=total)

    def finished(self, entry: RemoteEntry, summary: IngestSummary | None) -> None:
        for stage in ("download", "ingest"):
            task = self.tasks.get(f"{stage}:{entry.path}")
            if task is not None:
                self.progress.update(task, completed=self.progress.tasks[task].total)


def fetch(
    source: Annotated[str, typer.Argument(help="A file source named in the config.")],
    config_path: ConfigOption = None,
    db: DbOption = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Show what would be taken; download and change nothing."),
    ] = False,
    wait: Annotated[
        bool,
        typer.Option(
            help="Look twice, stable_for seconds apart, so files that are complete now are "
            "taken (without it, only files with a done marker or stable_for 0 are)."
        ),
    ] = True,
) -> None:
    """Poll one file source (folder, ftp, ftps, sftp) once, and show what it took."""
    if config_path is None:
        errors.print("fetch needs --config (the source is defined there)")
        raise typer.Exit(2)
    store, config = open_store(db, config_path)
    assert config is not None
    try:
        section = next((s for s in config.sources if s.name == source), None)
        if section is None:
            errors.print(f"no source named {source!r} in {config_path}")
            raise typer.Exit(2)
        cls: Any = source_class(section.type)
        if cls is None or not issubclass(cls, FilePoller):
            errors.print(f"source {source!r} is of type {section.type}, not a file source")
            raise typer.Exit(2)
        poller: FilePoller = cls(
            section, SourceContext(store, Routing(config.routes), config.base_dir)
        )
        _fetch(poller, store, dry_run=dry_run, wait=wait)
    finally:
        store.close()


def _fetch(poller: FilePoller, store: Any, *, dry_run: bool, wait: bool) -> None:
    stable_for = poller.config.stable_for
    try:
        if wait and stable_for > 0:
            poller.dry_run()  # the first look: sizes and mtimes noted
            with console.status(f"checking that files are complete ({stable_for:g} s) ..."):
                time.sleep(stable_for)
        if dry_run:
            _print_plan(poller)
            return
        with byte_progress() as bar:
            summaries = poller.poll_once(observer=_Bars(bar))
    except RemoteConfigError as exc:
        store.note_source(poller.name, error=f"configuration error: {exc}")
        errors.print(f"[bold red]configuration error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    except RemoteError as exc:
        store.note_source(poller.name, error=str(exc))
        errors.print(f"[bold red]cannot fetch:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    table = Table(title=f"fetch {poller.name}")
    for column in ("file", "format", "rows", "new", "known", "rejected", "note"):
        table.add_column(
            column, justify="left" if column in ("file", "format", "note") else "right"
        )
    for s in summaries:
        note = s.error or ("already ingested (same content)" if s.skipped else "")
        table.add_row(
            s.name,
            s.format or "-",
            str(s.rows_read),
            str(s.new),
            str(s.known),
            str(s.rejected),
            note,
        )
    console.print(table if summaries else f"{poller.name}: nothing to take")
    if any(s.error for s in summaries):
        raise typer.Exit(1)


def _print_plan(poller: FilePoller) -> None:
    planned = poller.dry_run()
    table = Table(title=f"fetch {poller.name} --dry-run")
    for column in ("file", "size", "modified (UTC)", "what happens"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for p in planned:
        moment = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(p.entry.mtime_ns / 1e9))
        table.add_row(p.entry.display, str(p.entry.size), moment, p.explanation)
    console.print(table if planned else f"{poller.name}: no matching files")


def files(
    config_path: ConfigOption = None,
    db: DbOption = None,
    source: Annotated[str | None, typer.Option(help="Only this source's files.")] = None,
    state: Annotated[
        str | None, typer.Option(help="Only this state: done, failed, ingesting.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """The file ledger: each file's state, rows accepted and rejected, and why it failed."""
    store, _ = open_store(db, config_path)
    try:
        with store.read() as conn:
            views = remote_ledger.list_files(conn, source=source, status=state, limit=limit)
    finally:
        store.close()
    table = Table(title="files")
    for column in ("source", "file", "state", "rows", "accepted", "rejected", "when", "reason"):
        table.add_column(
            column, justify="right" if column in ("rows", "accepted", "rejected") else "left"
        )
    for v in views:
        table.add_row(
            v.source,
            v.path if v.path and not Path(v.path).is_absolute() else v.name,
            v.status,
            str(v.rows_read),
            str(v.accepted),
            str(v.rejected),
            f"{v.when:%Y-%m-%d %H:%M:%S}Z" if v.when else "",
            v.reason or "",
        )
    console.print(table)
