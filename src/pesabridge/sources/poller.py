"""One poller for every file source: the drop folder, FTP, FTPS and SFTP.

Each poll lists the server (:mod:`pesabridge.sources.remotefs`), decides which files are
complete, fetches and ingests them, then leaves, archives or deletes each one:

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
trying again only every ``backoff_max`` seconds. Health is in ``pesabridge status``.
"""

from __future__ import annotations

import asyncio
import fnmatch
import hashlib
import posixpath
import random
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol

import structlog

from ..aio import wait_or_stop
from ..config import ComponentConfig
from ..pipeline import IngestSummary, ingest_file
from ..store import files as file_ledger
from ..store import remote as remote_ledger
from ..store import utcnow
from ..store.remote import RemoteKey
from .base import SourceContext
from .file_config import FileSourceConfig, RemoteSourceConfig
from .remotefs import (
    RemoteConfigError,
    RemoteEntry,
    RemoteFileError,
    RemoteFS,
    RemoteSession,
    RemoteUnavailable,
)

log = structlog.get_logger("pesabridge.sources.files")


@dataclass(frozen=True, slots=True)
class Disposition:
    """What happens to a file on the server after it is handled."""

    on_success: Literal["leave", "move", "delete"] = "leave"
    success_dir: str | None = None
    on_failure: Literal["leave", "move"] = "leave"
    failure_dir: str | None = None


Verdict = Literal["take", "changing", "no marker", "known", "cleanup", "later"]


@dataclass(frozen=True, slots=True)
class Planned:
    """What a poll would do with one file, and why."""

    entry: RemoteEntry
    verdict: Verdict
    marker: RemoteEntry | None = None
    known: remote_ledger.RemoteFileRecord | None = None

    @property
    def explanation(self) -> str:
        if self.verdict == "take":
            how = "done marker" if self.marker else "size and mtime stable"
            return f"take ({how})"
        if self.verdict == "changing":
            return "wait: still changing (not stable long enough)"
        if self.verdict == "no marker":
            return "wait: no done marker yet"
        if self.verdict == "later":
            return "next poll (max_files_per_poll reached)"
        known = self.known
        state = known.status if known else "handled"
        reason = f": {known.reason}" if known and known.reason else ""
        extra = " — will be moved/deleted as configured" if self.verdict == "cleanup" else ""
        return f"already {state}{reason}{extra}"


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


def backoff_delay(failures: int, poll_interval: float, cap: float) -> float:
    """Seconds to wait after ``failures`` consecutive connection failures (with jitter)."""
    first = min(poll_interval, 5.0)
    base: float = min(cap, first * 2.0 ** min(max(failures - 1, 0), 30))
    return base * (0.5 + random.random() / 2)


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
        # path -> ((size, mtime_ns), monotonic time first seen so)
        self._watch: dict[str, tuple[tuple[int, int], float]] = {}
        self._final: set[RemoteKey] = set()  # known and left where they are
        self._cleanup_failed: set[RemoteKey] = set()

    # -- deciding ---------------------------------------------------------------------

    def _skip_dirs(self) -> list[str]:
        d = self.disposition
        return [p for p in (d.success_dir, d.failure_dir) if p]

    def _wanted(self, entry: RemoteEntry) -> bool:
        name = entry.display_name
        if name.startswith("."):
            return False
        if not any(fnmatch.fnmatchcase(name, p) for p in self.config.include):
            return False
        return not any(fnmatch.fnmatchcase(name, p) for p in self.config.exclude)

    def key(self, entry: RemoteEntry) -> RemoteKey:
        return RemoteKey(self.name, entry.display, entry.size, entry.mtime_ns)

    def plan(self, session: RemoteSession, now: float | None = None) -> list[Planned]:
        """Look at the server and say, for each wanted file, what this poll does."""
        now = time.monotonic() if now is None else now
        entries = session.list_files(self.root, self.config.recursive, self._skip_dirs())
        markers: dict[str, RemoteEntry] = {}
        data: list[RemoteEntry] = []
        for entry in entries:
            suffix = next(
                (
                    m
                    for m in self.config.done_markers
                    if entry.name.endswith(m) and len(entry.name) > len(m)
                ),
                None,
            )
            if suffix is not None:
                markers[entry.path[: -len(suffix)]] = entry
            elif self._wanted(entry):
                data.append(entry)

        seen: set[str] = set()
        ready: list[tuple[RemoteEntry, RemoteEntry | None]] = []
        planned: list[Planned] = []
        for entry in data:
            seen.add(entry.path)
            signature = (entry.size, entry.mtime_ns)
            previous = self._watch.get(entry.path)
            if previous is None or previous[0] != signature:
                previous = (signature, now)
                self._watch[entry.path] = previous
            marker = markers.get(entry.path)
            if marker is not None:
                ready.append((entry, marker))
            elif self.config.require_done_marker:
                planned.append(Planned(entry, "no marker"))
            elif now - previous[1] >= self.config.stable_for:
                ready.append((entry, None))
            else:
                planned.append(Planned(entry, "changing"))
        for gone in set(self._watch) - seen:
            del self._watch[gone]

        if self.config.order == "name":
            ready.sort(key=lambda item: item[0].display)
        else:
            ready.sort(key=lambda item: (item[0].mtime_ns, item[0].display))
            if self.config.order == "newest":
                ready.reverse()

        taken = 0
        for entry, marker in ready:
            key = self.key(entry)
            if key in self._final:
                continue
            known = None
            with self.context.store.read() as conn:
                known = remote_ledger.lookup(conn, key)
            if known is not None and known.status in remote_ledger.FINAL:
                action = (
                    self.disposition.on_failure
                    if known.status == "failed"
                    else self.disposition.on_success
                )
                if action == "leave" or key in self._cleanup_failed:
                    self._final.add(key)
                    planned.append(Planned(entry, "known", marker, known))
                else:
                    planned.append(Planned(entry, "cleanup", marker, known))
                continue
            if taken >= self.config.max_files_per_poll:
                planned.append(Planned(entry, "later", marker, known))
                continue
            taken += 1
            planned.append(Planned(entry, "take", marker, known))
        order = {id(entry): i for i, (entry, _) in enumerate(ready)}
        planned.sort(key=lambda p: order.get(id(p.entry), -1))
        return planned

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
            self._watch.pop(entry.path, None)
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
        self._watch.pop(planned.entry.path, None)
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
        d = self.disposition
        action = d.on_success if success else d.on_failure
        folder = d.success_dir if success else d.failure_dir
        entry, marker = planned.entry, planned.marker
        key = self.key(entry)
        if action == "leave":
            self._final.add(key)
            return
        try:
            if action == "delete":
                session.delete(entry.path)
                if marker is not None:
                    session.delete(marker.path)
                return
            assert folder is not None
            session.makedirs(folder)
            target = _unique_target(session, folder, entry.name)
            session.rename(entry.path, target)
            if marker is not None:
                session.rename(marker.path, target + marker.name[len(entry.name) :])
            if note is not None:
                session.write_bytes(target + ".error.txt", (note + "\n").encode())
            log.info("file moved", source=self.name, file=entry.display, folder=folder)
        except RemoteUnavailable:
            raise  # the connection is gone; the next poll finishes the job
        except Exception as exc:
            self._cleanup_failed.add(key)
            log.warning(
                f"could not {action} the file on the server",
                source=self.name,
                file=entry.display,
                error=str(exc),
            )

    def _download(
        self, session: RemoteSession, entry: RemoteEntry, observer: Observer
    ) -> Path | None:
        """Fetch to a temporary name, resuming a broken earlier try; check the size."""
        from .remotefs import safe_local_name

        token = hashlib.sha256(
            f"{entry.display}\0{entry.size}\0{entry.mtime_ns}".encode()
        ).hexdigest()[:24]
        folder = self.work_dir / token
        folder.mkdir(parents=True, exist_ok=True)
        final = folder / safe_local_name(entry.display_name)
        if not final.resolve().is_relative_to(self.work_dir.resolve()):
            raise RemoteFileError(f"unsafe name {entry.display_name!r}")
        part = final.with_name(final.name + ".part")
        offset = part.stat().st_size if part.exists() else 0
        if offset > entry.size or not self.verify_size:
            part.unlink(missing_ok=True)
            offset = 0
        if offset:
            log.info("resuming download", source=self.name, file=entry.display, offset=offset)
        session.download(entry, part, offset, lambda done: observer.downloading(entry, done))
        got = part.stat().st_size
        if self.verify_size and got < entry.size:
            # A transfer that ended early (even one the server called complete): keep
            # what arrived; the next poll resumes from here.
            raise RemoteUnavailable(
                f"{entry.display}: download ended at {got} of {entry.size} bytes; "
                "it resumes at the next poll"
            )
        if self.verify_size and got != entry.size:
            part.unlink(missing_ok=True)
            self._watch.pop(entry.path, None)
            log.warning(
                "file changed while downloading; it will be taken once stable",
                source=self.name,
                file=entry.display,
                listed=entry.size,
                downloaded=got,
            )
            return None
        part.replace(final)
        return final

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
        log.info("watching for files", source=self.name, at=self.fs.description)
        failures = 0
        parked: str | None = None
        while not stop.is_set():
            delay = self.config.poll_interval
            try:
                await asyncio.to_thread(self.poll_once, should_stop=stop.is_set)
                if failures or parked:
                    log.info("source recovered", source=self.name)
                failures, parked = 0, None
            except RemoteConfigError as exc:
                message = f"configuration error: {exc}"
                if message != parked:
                    log.error(
                        "source parked: fix the configuration",
                        source=self.name,
                        error=str(exc),
                        retry_every=self.backoff_max,
                    )
                    parked = message
                await asyncio.to_thread(self.context.store.note_source, self.name, error=message)
                delay = max(self.backoff_max, self.config.poll_interval)
            except Exception as exc:
                failures += 1
                delay = backoff_delay(failures, self.config.poll_interval, self.backoff_max)
                if isinstance(exc, RemoteUnavailable):
                    log.warning(
                        "cannot reach the server",
                        source=self.name,
                        error=str(exc),
                        failures=failures,
                        retry_in=round(delay, 1),
                    )
                else:
                    log.exception("poll failed", source=self.name, retry_in=round(delay, 1))
                try:
                    await asyncio.to_thread(
                        self.context.store.note_source, self.name, error=str(exc)
                    )
                except Exception:
                    log.exception("cannot record the source's state", source=self.name)
            await wait_or_stop(stop, delay)


def _unique_target(session: RemoteSession, folder: str, name: str) -> str:
    """``folder/name``, or a timestamped name when that is taken: never overwrite."""
    target = session.join(folder, name)
    if not session.exists(target):
        return target
    stamp = utcnow().strftime("%Y%m%dT%H%M%S%f")
    stem, dot, suffix = name.rpartition(".")
    renamed = f"{stem}.{stamp}.{suffix}" if dot and stem else f"{name}.{stamp}"
    return session.join(folder, renamed)


def default_work_dir(context: SourceContext, name: str, configured: Path | None) -> Path:
    """Where a source's downloads in progress live."""
    if configured is not None:
        return context.resolve(configured)
    return context.resolve(Path(".pesabridge") / "work" / name)


def remote_poller_settings(config: RemoteSourceConfig, context: SourceContext) -> dict[str, Any]:
    """The FilePoller settings every server source (ftp, ftps, sftp) derives from its config."""
    return {
        "root": posixpath.normpath(config.remote_dir),
        "disposition": remote_disposition(config),
        "work_dir": default_work_dir(context, config.name, config.work_dir),
        "backoff_max": config.backoff_max,
    }


def remote_disposition(config: RemoteSourceConfig) -> Disposition:
    return Disposition(
        on_success="move" if config.on_success == "archive" else config.on_success,
        success_dir=config.remote_path(config.archive_dir) if config.archive_dir else None,
        on_failure=config.on_failure,
        failure_dir=config.remote_path(config.error_dir) if config.error_dir else None,
    )


def marker_names(name: str, markers: Sequence[str]) -> list[str]:
    """The marker file names a producer may write for ``name``."""
    return [name + m for m in markers]
