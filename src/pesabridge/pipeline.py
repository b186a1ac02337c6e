"""Ingesting a file: parse, record in batches, keep rejects, mark the file done.

A file is marked done only after all of its rows are committed. Re-reading a file that
was interrupted is safe: every row already recorded is recognised by its identity and
its evidence fingerprint, so nothing is duplicated and nothing is lost.
"""

from __future__ import annotations

import gc
import hashlib
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection

from .errors import UnknownFormat
from .formats import Observation, Reject, StatementHeader, detect_format, get_parser
from .formats.base import Parser
from .formats.registry import FormatOptionsError
from .store import RecordResult, Router, Sighting, Store, utcnow
from .store import files as file_ledger

BATCH_SIZE = 10_000
SNIFF_BYTES = 65_536

ProgressCallback = Callable[[int], None]
"""Called with the number of bytes read so far (for progress bars)."""


@dataclass(slots=True)
class IngestSummary:
    """What ingesting one file did."""

    name: str
    format: str | None = None
    file_id: int | None = None
    rows_read: int = 0
    new: int = 0
    known: int = 0
    conflicting: int = 0
    rejected: int = 0
    skipped: bool = False
    """True when this content had been ingested before (by sha256)."""
    error: str | None = None
    rejects: list[Reject] = field(default_factory=list)
    """The first rejects (at most 100), for display."""

    @property
    def ok(self) -> bool:
        return self.error is None and self.rejected == 0


def file_sha256(path: Path) -> str:
    """Content hash of a file, streamed."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def choose_parser(path: Path, fmt: str, format_options: Mapping[str, Any] | None = None) -> Parser:
    """The parser for ``fmt``, or the one that recognises the file when ``fmt`` is auto.

    ``format_options`` configure a named format (see :func:`~pesabridge.formats.get_parser`);
    options that are not valid raise :class:`FormatOptionsError` (a ``ConfigError`` and
    an ``UnknownFormat``).
    """
    if fmt != "auto":
        return get_parser(fmt, format_options)
    if format_options:
        raise FormatOptionsError(["format_options: given with format auto; name the format"])
    with path.open("rb") as stream:
        head = stream.read(SNIFF_BYTES)
    parser = detect_format(head, path.name)
    if parser is None:
        raise UnknownFormat(f"{path.name}: no known format recognises this file; pass --format")
    return parser


@contextmanager
def _no_cyclic_gc() -> Iterator[None]:
    """Pause the cyclic garbage collector for a bulk ingest.

    Every batch keeps tens of thousands of container objects alive (observations,
    transactions, row tuples) long enough to be promoted, so the collector would run full
    collections over the whole heap every batch: about a quarter of a large ingest's time,
    for nothing (the ingest path builds no reference cycles; reference counting frees each
    batch). The previous state is restored on the way out, whatever happens.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def ingest_file(
    store: Store,
    path: Path,
    *,
    fmt: str = "auto",
    source: str = "cli",
    route: Router,
    progress: ProgressCallback | None = None,
    force: bool = False,
    batch_size: int = BATCH_SIZE,
    format_options: Mapping[str, Any] | None = None,
) -> IngestSummary:
    """Ingest one statement file into the ledger; see the module docstring."""
    summary = IngestSummary(name=path.name)
    sha = file_sha256(path)
    stat = path.stat()
    with store.write() as conn:
        previous = file_ledger.find(conn, sha)
        if previous is not None and previous.status == "done" and not force:
            summary.skipped = True
            summary.file_id = previous.id
            return summary
        try:
            parser = choose_parser(path, fmt, format_options)
        except UnknownFormat as exc:
            summary.error = str(exc)
            return summary
        summary.format = parser.name
        file_id = file_ledger.start(
            conn,
            sha256=sha,
            source=source,
            name=path.name,
            path=str(path),
            size=stat.st_size,
            mtime=datetime.fromtimestamp(stat.st_mtime, UTC),
            fmt=parser.name,
            now=utcnow(),
        )
        if previous is not None:
            file_ledger.reset_counts(conn, file_id)
    summary.file_id = file_id
    sighting = Sighting(kind="file", origin="file", file_id=file_id)

    header: StatementHeader | None = None
    observations: list[Observation] = []
    rejects: list[Reject] = []

    def flush() -> None:
        def bookkeeping(conn: Connection, result: RecordResult) -> None:
            file_ledger.add_rejects(conn, rejects, file_id, utcnow())
            file_ledger.progress(
                conn,
                file_id,
                rows_read=len(observations) + len(rejects),
                new=result.new,
                known=result.known,
                rejected=len(rejects),
            )

        result = store.record(observations, sighting, route, also=bookkeeping)
        summary.rows_read += len(observations) + len(rejects)
        summary.new += result.new
        summary.known += result.known
        summary.conflicting += result.conflicting
        summary.rejected += len(rejects)
        room = 100 - len(summary.rejects)
        summary.rejects.extend(rejects[:room])
        observations.clear()
        rejects.clear()
        # The batch is freed by reference counting; what is left among the objects made
        # since the last batch is little, so this young-generation pass is cheap, and it
        # frees any reference cycles (drivers, SQLAlchemy) while the collector is paused.
        gc.collect(0)
        if progress is not None:
            progress(reader.tell())

    try:
        with _no_cyclic_gc(), path.open("rb") as reader:
            for item in parser.parse(reader, path.name):
                if isinstance(item, Observation):
                    observations.append(item)
                elif isinstance(item, Reject):
                    rejects.append(item)
                elif isinstance(item, StatementHeader):
                    header = item
                # a FailedAttempt moved no money: nothing to record from a file
                if len(observations) + len(rejects) >= batch_size:
                    flush()
            flush()
    except Exception as exc:
        # A parser must not raise on bad input; if one does, the file is failed with the
        # reason, and what was committed before stays (a re-ingest picks up the rest).
        # First line only: a database error's text would otherwise carry whole rows.
        detail = str(exc).strip().splitlines()[0][:500] if str(exc).strip() else ""
        summary.error = f"{path.name}: {type(exc).__name__}: {detail}"
        with store.write() as conn:
            file_ledger.finish(conn, file_id, status="failed", now=utcnow(), error=summary.error)
        return summary
    with store.write() as conn:
        file_ledger.finish(conn, file_id, status="done", now=utcnow(), header=header)
    return summary
