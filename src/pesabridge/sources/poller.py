"""One poller for every file source: the drop folder, FTP, FTPS and SFTP.

Each poll lists the server (:mod:`pesabridge.sources.remotefs`), decides which files are
complete (:mod:`~pesabridge.sources.file_plan`), fetches
(:mod:`~pesabridge.sources.file_fetch`) and ingests them, then leaves, archives or
deletes each one (:mod:`~pesabridge.sources.file_disposition`):

- *complete* means a done-marker (``NAME.done``, ``NAME.ok``) is present, or the file's
  size and mtime have not changed for ``stable_for`` seconds;
- every file is looked up in the ledger by (source, path, size, mtime) before it is
  downloaded — a file handled before, or failed before, is never fetched again while it
  stays the same — and by content (sha256) after, so a copy under another name is
  recognised and a changed file under the same name is ingested as new;
- a download goes to a temporary name in the work directory, is resumed after a broken
  connection, checked against the listed size, and only then renamed and ingested;
- a crash at any point is safe: the ledger recognises rows already recorded, and a file
  whose outcome was not recorded is simply fetched again.

Connection failures back off exponentially with jitter; a configuration error (wrong
password, host key mismatch, untrusted certificate) is logged once and the source parks,
trying again only every ``backoff_max`` seconds (:mod:`~pesabridge.sources.file_loop`).
Health is in ``pesabridge status``.
"""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, Protocol

import structlog

from ..config import ComponentConfig
from ..pipeline import IngestSummary, ingest_file
from ..store import files as file_ledger
from ..store import remote as remote_ledger
from ..store import utcnow
from ..store.remote import RemoteKey
from .base import SourceContext
from .file_config import FileSourceConfig
from .file_disposition import Disposition, dispose
from .file_fetch import download
from .file_loop import poll_until_stopped
from .file_plan import FilePlanner, Planned
from .remotefs import RemoteEntry, RemoteFileError, RemoteFS, RemoteSession

log = structlog.get_logger("pesabridge.sources.files")


class Observer(Protocol):
    """Progress hooks (the CLI draws bars with them)."""

    def downloading(self, entry: RemoteEntry, done: int) -> None: ...

    def ingesting(self, entry: RemoteEntry, done: int, total: int) -> None: ...

    def finished(self, entry: RemoteEntry, summary: IngestSummary | None) -> None: ...


class _Quiet:
    def downloading(self, entry: RemoteEntry, done: int) -> None:
        pass

    def ingesting(self, entry: RemoteEntry, done: int, total: int) -> None:
        pass

    def finished(self, entry: RemoteEntry, summary: IngestSummary | None) -> None:
        pass


class FilePoller:
    """Polls one server (or folder) for statement files; see the module docstring."""

    Config: ClassVar[type[ComponentConfig]]

    def __init__(
        self,
        config: FileSourceConfig,
        context: SourceContext,
        fs: RemoteFS,
        *,
        root: str,
        disposition: Disposition,
        work_dir: Path,
        backoff_max: float = 600.0,
        verify_size: bool = True,
        origin: Callable[[RemoteEntry], str] | None = None,
    ) -> None:
        self.config = config
        self.name = config.name
        self.context = context
        self.fs = fs
        self.root = root
        self.disposition = disposition
        self.work_dir = work_dir
        self.backoff_max = backoff_max
        self.verify_size = verify_size
        self._origin = origin
        self._route = context.routing.router_for(self.name)
        self._planner = FilePlanner(
            self.name, config, context.store, root=root, disposition=disposition
        )

    # -- deciding ---------------------------------------------------------------------

    def key(self, entry: RemoteEntry) -> RemoteKey:
        return self._planner.key(entry)

    def plan(self, session: RemoteSession, now: float | None = None) -> list[Planned]:
        """Look at the server and say, for each wanted file, what this poll does."""
        return self._planner.plan(session, now)

    # -- doing ------------------------------------------------------------------------

    def poll_once(
        self,
        now: float | None = None,
        *,
        observer: Observer | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[IngestSummary]:
        """One poll: ingest every complete file (up to ``max_files_per_poll``)."""
        observer = observer or _Quiet()
        summaries: list[IngestSummary] = []
        with self.context.store.exclusive(f"poll:{self.name}") as held:
            if not held:
                log.info("another process is polling this source; skipped", source=self.name)
                return summaries
            self._poll(
                session_summaries=summaries, now=now, observer=observer, should_stop=should_stop
            )
        self.context.store.note_source(self.name)
        return summaries

    def _poll(
        self,
        *,
        session_summaries: list[IngestSummary],
        now: float | None,
        observer: Observer,
        should_stop: Callable[[], bool] | None,
    ) -> None:
        summaries = session_summaries
        with self.fs.session() as session:
            for planned in self.plan(session, now):
                if should_stop is not None and should_stop():
                    break
                if planned.verdict == "cleanup":
                    summaries.append(self._cleanup(session, planned))
                elif planned.verdict == "take":
                    summary = self._take(session, planned, observer)
                    observer.finished(planned.entry, summary)
                    if summary is not None:
                        summaries.append(summary)

    def dry_run(self, now: float | None = None) -> list[Planned]:
        """What a poll would do, without downloading, ingesting or moving anything."""
        with self.fs.session() as session:
            return self.plan(session, now)

    def _take(
        self, session: RemoteSession, planned: Planned, observer: Observer
    ) -> IngestSummary | None:
        entry = planned.entry
        key = self.key(entry)
        store = self.context.store
        with store.write() as conn:
            row_id = remote_ledger.begin(conn, key, utcnow())
        limit = int(self.config.max_file_size)
        if entry.size > limit:
            reason = (
                f"{entry.display_name}: {entry.size} bytes is over max_file_size "
                f"({limit} bytes); not downloaded"
            )
            return self._failed(session, planned, row_id, IngestSummary(entry.display_name), reason)
        local = session.local_path(entry)
        downloaded = local is None
        try:
            if local is None:
                try:
                    local = self._download(session, entry, observer)
                except RemoteFileError as exc:
                    reason = f"{entry.display_name}: {exc}"
                    summary = IngestSummary(entry.display_name)
                    return self._failed(session, planned, row_id, summary, reason)
                if local is None:
                    return None
            summary = self._ingest(local, entry, observer)
            if summary.error is not None:
                return self._failed(session, planned, row_id, summary, summary.error)
            with store.write() as conn:
                if downloaded and summary.file_id is not None and not summary.skipped:
                    file_ledger.set_origin(
                        conn,
                        summary.file_id,
                        path=self._origin(entry) if self._origin else entry.display,
                        size=entry.size,
                        mtime=datetime.fromtimestamp(entry.mtime_ns / 1e9, UTC),
                    )
                remote_ledger.finish(
                    conn,
                    row_id,
                    status="skipped" if summary.skipped else "done",
                    now=utcnow(),
                    file_id=summary.file_id,
                )
            log.info(
                "file ingested",
                source=self.name,
                file=entry.display,
                skipped=summary.skipped,
                rows=summary.rows_read,
                new=summary.new,
                known=summary.known,
                rejected=summary.rejected,
            )
            if not summary.skipped and summary.file_id is not None:
                self._after_statement(summary.file_id, local)
            self._dispose(session, planned, success=True, note=None)
            self._planner.forget(entry)
            return summary
        finally:
            if downloaded and local is not None:
                shutil.rmtree(local.parent, ignore_errors=True)

    def _after_statement(self, file_id: int, local: Path) -> None:
        """Let reconciliation look at the new statement; its failure never fails the file."""
        hook = self.context.after_statement
        if hook is None:
            return
        try:
            hook(file_id, local)
        except Exception:
            log.exception("reconciliation after ingest failed", source=self.name, file=file_id)

    def _failed(
        self,
        session: RemoteSession,
        planned: Planned,
        row_id: int,
        summary: IngestSummary,
        reason: str,
    ) -> IngestSummary:
        summary.error = reason
        with self.context.store.write() as conn:
            remote_ledger.finish(
                conn,
                row_id,
                status="failed",
                now=utcnow(),
                reason=reason,
                file_id=summary.file_id,
            )
        log.error("file failed", source=self.name, file=planned.entry.display, error=reason)
        self._dispose(session, planned, success=False, note=reason)
        self._planner.forget(planned.entry)
        return summary

    def _cleanup(self, session: RemoteSession, planned: Planned) -> IngestSummary:
        """A file handled before is still there (a crash, or the same file put back)."""
        known = planned.known
        failed = known is not None and known.status == "failed"
        summary = IngestSummary(planned.entry.display_name, skipped=not failed)
        if failed and known is not None:
            summary.error = known.reason
        summary.file_id = known.file_id if known else None
        self._dispose(session, planned, success=not failed, note=summary.error)
        return summary

    def _dispose(
        self, session: RemoteSession, planned: Planned, *, success: bool, note: str | None
    ) -> None:
        entry = planned.entry
        outcome = dispose(
            session,
            self.disposition,
            entry,
            planned.marker,
            success=success,
            note=note,
            source=self.name,
        )
        if outcome == "left":
            self._planner.settled(entry)
        elif outcome == "failed":
            self._planner.cleanup_failed(entry)

    def _download(
        self, session: RemoteSession, entry: RemoteEntry, observer: Observer
    ) -> Path | None:
        """Fetch into the work directory; None when the file changed meanwhile."""
        local = download(
            session,
            entry,
            self.work_dir,
            verify_size=self.verify_size,
            progress=lambda done: observer.downloading(entry, done),
            source=self.name,
        )
        if local is None:
            self._planner.forget(entry)
        return local

    def _ingest(self, local: Path, entry: RemoteEntry, observer: Observer) -> IngestSummary:
        total = local.stat().st_size
        return ingest_file(
            self.context.store,
            local,
            fmt=self.config.format,
            source=self.name,
            route=self._route,
            progress=lambda done: observer.ingesting(entry, done, total),
            format_options=self.config.format_options or None,
        )

    # -- running ----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set, backing off on connection errors and parking on
        configuration errors (logged once, not retried in a storm)."""
        await poll_until_stopped(self, stop)
