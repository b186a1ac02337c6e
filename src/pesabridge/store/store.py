"""The :class:`Store`: the ledger, the file ledger and the outbox behind one object."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, update
from sqlalchemy.exc import IntegrityError, OperationalError

from ..formats.base import Observation
from . import outbox, queries
from .connector import DEFAULT_URL, create_store_engine, exclusive, read_only, redacted
from .ledger import RecordResult, Router, Sighting, record_batch
from .migrate import upgrade
from .outbox import AttemptRecord, Claimed
from .schema import source_state


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


class Store:
    """The durable ledger. Open one per process; it is safe to share between threads.

    >>> store = Store.open("sqlite:///pesabridge.db")
    """

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url
        self._reader = read_only(engine)
        # SQLite has one writer at a time; threads of this process queue here instead of
        # in SQLite's busy handler, which sleeps in steps of up to 100 ms while it waits.
        self._write_lock: threading.RLock | None = (
            threading.RLock() if engine.dialect.name == "sqlite" else None
        )

    @classmethod
    def open(cls, url: str = DEFAULT_URL, *, migrate: bool = True) -> Store:
        """Connect to ``url`` and, unless told not to, bring its schema up to date."""
        engine = create_store_engine(url)
        if migrate:
            upgrade(engine)
        return cls(engine, url)

    @property
    def display_url(self) -> str:
        """The database URL with any password hidden."""
        return redacted(self.url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A write transaction: committed on exit, rolled back on error."""
        if self._write_lock is None:
            with self.engine.begin() as conn:
                yield conn
            return
        with self._write_lock, self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read transaction that does not take SQLite's write lock."""
        with self._reader.begin() as conn:
            yield conn

    def record(
        self,
        observations: Sequence[Observation],
        sighting: Sighting,
        route: Router,
        *,
        also: Callable[[Connection, RecordResult], None] | None = None,
    ) -> RecordResult:
        """Record observations durably, in one transaction with ``also`` (if given).

        Two processes recording the same new transaction at once collide on the identity's
        unique key; the loser's transaction is retried whole and then sees the winner's row
        as known.
        """
        for attempt in range(5):
            try:
                with self.write() as conn:
                    result = record_batch(conn, observations, sighting, route, utcnow())
                    if also is not None:
                        also(conn, result)
                    return result
            except (IntegrityError, OperationalError):
                if attempt == 4:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    @contextmanager
    def exclusive(self, name: str) -> Iterator[bool]:
        """Try to hold ``name`` alone across processes; yields whether it is held.

        Pollers hold ``poll:<source>`` so that one poller per source runs at a time,
        however many ``run`` or ``worker`` processes share the ledger.
        """
        with exclusive(self.engine, name) as held:
            yield held

    # -- outbox -----------------------------------------------------------------------

    def claim(
        self,
        worker: str,
        *,
        limit: int = 10,
        lease: timedelta = timedelta(seconds=60),
        sinks: Sequence[str] | None = None,
    ) -> list[Claimed]:
        """Lease up to ``limit`` due deliveries to ``worker``."""
        with self.write() as conn:
            return outbox.claim(conn, worker, limit=limit, lease=lease, now=utcnow(), sinks=sinks)

    def finish(
        self, claimed: Claimed, record: AttemptRecord, *, next_attempt_at: datetime | None = None
    ) -> bool:
        """Record an attempt's outcome; see :func:`pesabridge.store.outbox.finish`."""
        with self.write() as conn:
            return outbox.finish(conn, claimed, record, next_attempt_at=next_attempt_at)

    def finish_many(
        self, finished: Sequence[tuple[Claimed, AttemptRecord, datetime | None]]
    ) -> list[bool]:
        """Record several attempts' outcomes in one transaction (one commit for a batch)."""
        with self.write() as conn:
            return outbox.finish_many(conn, finished)

    def release(self, worker: str, claimed: Sequence[Claimed]) -> None:
        """Hand back deliveries ``worker`` claimed but never sent (see
        :func:`pesabridge.store.outbox.release`)."""
        with self.write() as conn:
            outbox.release(conn, worker, claimed, utcnow())

    def replay(
        self,
        *,
        ids: Sequence[int] | None = None,
        dead: bool = False,
        sink: str | None = None,
        receipt: str | None = None,
        since: datetime | None = None,
    ) -> int:
        """Make deliveries due again; returns how many."""
        with self.write() as conn:
            return outbox.replay(
                conn, utcnow(), ids=ids, dead=dead, sink=sink, receipt=receipt, since=since
            )

    def pause_sink(self, name: str, reason: str | None = None) -> None:
        """Stop claiming ``name``'s deliveries (in-flight ones finish)."""
        with self.write() as conn:
            outbox.set_paused(conn, name, True, utcnow(), reason)

    def resume_sink(self, name: str) -> None:
        """Claim ``name``'s deliveries again."""
        with self.write() as conn:
            outbox.set_paused(conn, name, False, utcnow(), None)

    def sink_states(self) -> dict[str, queries.SinkStateView]:
        """Every sink with deliveries or a recorded state: paused or not, counts per state."""
        with self.read() as conn:
            return queries.sink_states(conn)

    def delivery(self, delivery_id: int) -> queries.DeliveryDetail | None:
        """One delivery with every attempt, for ``pesabridge deliveries show``."""
        with self.read() as conn:
            return queries.delivery_detail(conn, delivery_id)

    # -- views ----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Counts per state and per sink, file outcomes, source health."""
        with self.read() as conn:
            return queries.status_counts(conn)

    def deliveries(
        self,
        *,
        failed: bool = False,
        state: str | None = None,
        limit: int = 100,
        sink: str | None = None,
        receipt: str | None = None,
        since: datetime | None = None,
    ) -> list[queries.DeliveryView]:
        """Deliveries, newest first."""
        with self.read() as conn:
            return queries.list_deliveries(
                conn,
                failed=failed,
                state=state,
                limit=limit,
                sink=sink,
                receipt=receipt,
                since=since,
            )

    def note_source(self, name: str, *, error: str | None = None) -> None:
        """Record a poll of a source: its time, and success or the error."""
        now = utcnow()
        values: dict[str, Any] = {"last_poll_at": now}
        if error is None:
            values["last_success_at"] = now
        else:
            values.update(last_error=error, last_error_at=now)
        with self.write() as conn:
            changed = conn.execute(
                update(source_state).where(source_state.c.name == name).values(**values)
            ).rowcount
            if not changed:
                conn.execute(source_state.insert().values(name=name, **values))
