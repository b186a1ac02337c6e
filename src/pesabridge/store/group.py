"""Group commit: many concurrent callbacks, one write transaction, one fsync.

A callback is acknowledged only after its transaction, evidence and outbox rows are
committed. Committing each request on its own costs one fsync per callback, and
throughput collapses to the disk's fsync rate. :class:`GroupCommitter` gathers the work of
concurrent requests (up to ``max_batch`` items, waiting at most ``max_wait`` seconds
after the first), runs each item in its own SAVEPOINT inside one write transaction,
commits once, and only then resolves each caller's future::

    committer = GroupCommitter(store)
    result = await committer.submit(lambda conn: record_batch(conn, ...))

One item's failure (a bad value, a unique-key race lost to another process) rolls back
its savepoint only: the other items in the batch still commit. A failure of the batch
as a whole (the database locked past its timeout, the connection lost) is retried whole
and, if it persists, raised to every caller, none of whom is acknowledged.

Durability: on SQLite the committer's own connection runs with ``PRAGMA
synchronous=FULL`` (the WAL is fsynced at every commit), while the rest of the process
keeps ``NORMAL``; ``synchronous`` is a per-connection setting, so nothing else changes.
On PostgreSQL every commit is flushed (``synchronous_commit`` on, the server default).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import structlog
from sqlalchemy import Connection
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError

from ..metrics import GROUP_COMMIT_SIZE
from .store import Store

log = structlog.get_logger("pesabridge.store.group")

T = TypeVar("T")
Work = Callable[[Connection], T]

_FATAL = (OperationalError, InterfaceError)
"""Errors that doom the whole transaction rather than one item."""


@dataclass(slots=True)
class _Item(Generic[T]):
    work: Work[T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]
    outcome: tuple[bool, Any] = field(default=(False, None))


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():  # the caller went away (client disconnected, shutdown)
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


class GroupCommitter:
    """Gathers concurrent writes into one transaction per batch; see the module docs."""

    def __init__(
        self,
        store: Store,
        *,
        max_batch: int = 256,
        max_wait: float = 0.002,
        durable: bool = True,
        retries: int = 5,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.store = store
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.durable = durable
        self.retries = retries
        self.batches = 0
        """Transactions committed (for tests and the benchmark)."""
        self.items = 0
        """Items committed."""
        self._queue: queue.SimpleQueue[_Item[Any] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._conn: Connection | None = None

    # -- the callers' side --------------------------------------------------------------

    async def submit(self, work: Work[T]) -> T:
        """Run ``work(conn)`` in the next group transaction; returns after the commit."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._start()
        self._queue.put(_Item(work, loop, future))
        # The write happens whether or not the caller is still waiting: shield it, so a
        # cancelled request does not leave a committed row whose future nobody reads.
        return await asyncio.shield(future)

    def _start(self) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the group committer is closed")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="pesabridge-group-commit", daemon=True
                )
                self._thread.start()

    def close(self) -> None:
        """Commit what is queued, then stop the thread and release its connection."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join()

    # -- the committer thread -----------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        try:
            while not stopping:
                first = self._queue.get()
                if first is None:
                    break
                batch: list[_Item[Any]] = [first]
                deadline = time.monotonic() + self.max_wait
                while len(batch) < self.max_batch:
                    remaining = deadline - time.monotonic()
                    try:
                        nxt = (
                            self._queue.get(timeout=remaining)
                            if remaining > 0
                            else self._queue.get_nowait()
                        )
                    except queue.Empty:
                        break
                    if nxt is None:
                        stopping = True
                        break
                    batch.append(nxt)
                self._commit(batch)
        finally:
            self._release()

    def _connection(self) -> Connection:
        if self._conn is None:
            conn = self.store.engine.connect()
            if self.durable and conn.dialect.name == "sqlite":
                # Outside any transaction (the driver is in autocommit mode: BEGIN is ours).
                conn.connection.driver_connection.execute("PRAGMA synchronous=FULL")  # type: ignore[union-attr]
            self._conn = conn
        return self._conn

    def _release(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        with contextlib.suppress(Exception):
            if conn.in_transaction():
                conn.rollback()
            if self.durable and conn.dialect.name == "sqlite":
                # back to the pool's setting before another user gets this connection
                conn.connection.driver_connection.execute("PRAGMA synchronous=NORMAL")  # type: ignore[union-attr]
        with contextlib.suppress(Exception):
            conn.close()

    def _commit(self, batch: list[_Item[Any]]) -> None:
        for attempt in range(self.retries):
            try:
                conn = self._connection()
                with conn.begin():
                    for item in batch:
                        item.outcome = self._one(conn, item)
                break
            except _FATAL as exc:
                self._release()  # a broken connection is not reused
                if attempt == self.retries - 1:
                    log.error("group commit failed", items=len(batch), error=str(exc))
                    for item in batch:
                        item.outcome = (False, exc)
                    break
                log.warning("group commit retried", items=len(batch), error=str(exc))
                time.sleep(0.05 * (attempt + 1))
            except BaseException as exc:  # a bug: fail the callers rather than hang them
                self._release()
                log.exception("group commit crashed", items=len(batch))
                for item in batch:
                    item.outcome = (False, exc)
                break
        else:  # pragma: no cover - the loop always breaks
            raise AssertionError("unreachable")
        committed = sum(1 for item in batch if item.outcome[0])
        if committed:
            self.batches += 1
            self.items += committed
            GROUP_COMMIT_SIZE.observe(committed)
        for item in batch:
            ok, value = item.outcome
            with contextlib.suppress(RuntimeError):  # the caller's loop is gone
                item.loop.call_soon_threadsafe(_settle, item.future, ok, value)

    def _one(self, conn: Connection, item: _Item[Any]) -> tuple[bool, Any]:
        """One caller's work in its own savepoint. Fatal errors propagate to the batch."""
        for attempt in range(3):
            savepoint = conn.begin_nested()
            try:
                value = item.work(conn)
            except IntegrityError as exc:
                # Another process inserted the same identity first; its row is
                # visible now, so running the work again finds it as known.
                savepoint.rollback()
                if attempt == 2:
                    return (False, exc)
                continue
            except _FATAL:
                raise
            except Exception as exc:
                savepoint.rollback()
                return (False, exc)
            savepoint.commit()
            return (True, value)
        raise AssertionError("unreachable")
