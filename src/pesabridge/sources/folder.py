"""A drop folder: statement files appear, are ingested once, and move to done/ or failed/.

A file is taken only when its size and modification time have not changed for
``stable_for`` seconds, so a file still being copied in is never read half-written. The
file ledger keys on content (sha256): the same file dropped again, even renamed, is
recognised and not ingested twice.
"""

from __future__ import annotations

import asyncio
import fnmatch
import shutil
import time
from pathlib import Path
from typing import ClassVar, Literal

import structlog
from pydantic import Field

from ..aio import wait_or_stop
from ..config import ComponentConfig
from ..pipeline import IngestSummary, ingest_file
from ..store import utcnow
from .base import SourceContext

log = structlog.get_logger("pesabridge.sources.folder")


class FolderSourceConfig(ComponentConfig):
    """``type: folder``."""

    type: Literal["folder"] = "folder"
    path: Path
    format: str = "auto"
    include: list[str] = ["*.csv", "*.CSV", "*.xlsx", "*.XLSX", "*.txt"]
    poll_interval: float = Field(default=5.0, gt=0)
    stable_for: float = Field(default=5.0, ge=0)
    """Seconds a file's size and mtime must stay unchanged before it is read."""
    done_dir: Path | None = None
    """Where ingested files go; ``<path>/done`` by default."""
    failed_dir: Path | None = None
    """Where unreadable files go; ``<path>/failed`` by default."""


class FolderSource:
    """Polls a local folder for statement files."""

    Config: ClassVar[type[ComponentConfig]] = FolderSourceConfig

    def __init__(self, config: FolderSourceConfig, context: SourceContext) -> None:
        self.config = config
        self.name = config.name
        self.context = context
        self.path = context.resolve(config.path)
        self.done_dir = context.resolve(config.done_dir) if config.done_dir else self.path / "done"
        self.failed_dir = (
            context.resolve(config.failed_dir) if config.failed_dir else self.path / "failed"
        )
        self._route = context.routing.router_for(self.name)
        # name -> ((size, mtime_ns), monotonic time first seen unchanged)
        self._watch: dict[str, tuple[tuple[int, int], float]] = {}

    def ready_files(self, now: float | None = None) -> list[Path]:
        """Files whose size and mtime have been stable long enough, oldest first."""
        now = time.monotonic() if now is None else now
        ready: list[tuple[int, Path]] = []
        seen: set[str] = set()
        try:
            entries = list(self.path.iterdir())
        except FileNotFoundError:
            self.path.mkdir(parents=True, exist_ok=True)
            return []
        for entry in entries:
            if not entry.is_file() or entry.name.startswith("."):
                continue
            if not any(fnmatch.fnmatchcase(entry.name, pattern) for pattern in self.config.include):
                continue
            stat = entry.stat()
            signature = (stat.st_size, stat.st_mtime_ns)
            seen.add(entry.name)
            previous = self._watch.get(entry.name)
            if previous is None or previous[0] != signature:
                self._watch[entry.name] = (signature, now)
                if self.config.stable_for > 0:
                    continue
                previous = (signature, now)
            if now - previous[1] >= self.config.stable_for:
                ready.append((stat.st_mtime_ns, entry))
        for gone in set(self._watch) - seen:
            del self._watch[gone]
        return [path for _, path in sorted(ready)]

    def ingest(self, path: Path) -> IngestSummary:
        """Ingest one ready file and move it to done/ or failed/."""
        summary = ingest_file(
            self.context.store, path, fmt=self.config.format, source=self.name, route=self._route
        )
        if summary.error is not None:
            target = _move(path, self.failed_dir)
            target.with_name(target.name + ".error.txt").write_text(summary.error + "\n")
            log.error(
                "file failed",
                source=self.name,
                file=path.name,
                error=summary.error,
                moved_to=str(target),
            )
        else:
            target = _move(path, self.done_dir)
            log.info(
                "file ingested",
                source=self.name,
                file=path.name,
                skipped=summary.skipped,
                rows=summary.rows_read,
                new=summary.new,
                known=summary.known,
                rejected=summary.rejected,
                moved_to=str(target),
            )
        self._watch.pop(path.name, None)
        return summary

    def poll_once(self, now: float | None = None) -> list[IngestSummary]:
        """One poll: ingest every ready file."""
        summaries = [self.ingest(path) for path in self.ready_files(now)]
        self.context.store.note_source(self.name)
        return summaries

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every ``poll_interval`` seconds until ``stop`` is set."""
        log.info("watching folder", source=self.name, path=str(self.path))
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.poll_once)
            except Exception as exc:
                log.exception("folder poll failed", source=self.name)
                await asyncio.to_thread(self.context.store.note_source, self.name, error=str(exc))
            await wait_or_stop(stop, self.config.poll_interval)


def _move(path: Path, folder: Path) -> Path:
    """Move ``path`` into ``folder`` without overwriting anything already there."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if target.exists():
        stamp = utcnow().strftime("%Y%m%dT%H%M%S%f")
        target = folder / f"{path.stem}.{stamp}{path.suffix}"
    shutil.move(str(path), target)
    return target
