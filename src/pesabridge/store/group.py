"""Group commit: many concurrent callbacks, one write transaction, one fsync.

A callback is acknowledged only after its transaction, evidence and outbox rows are
committed. Committing each request on its own costs one fsync per callback, and
throughput collapses to the disk's fsync rate. :class:`GroupCommitter` gathers the work of
concurrent requests (up to ``max_batch`` items, waiting at most ``max_wait`` seconds
after the first), runs it inside one write transaction, commits once, and only then
resolves each caller's future::

    committer = GroupCommitter(store)
    result = await committer.submit(lambda conn: record_batch(conn, ...))
    results = await committer.submit_bulk(record_many, payload)  # merged with others

How a batch runs (savepoints, merged bulk work) is :mod:`pesabridge.store.group_batch`.
A failure of the batch as a whole (the database locked past its timeout, the connection
lost) is retried whole and, if it persists, raised to every caller, none of whom is
acknowledged.

Where it runs:

- **SQLite: on the event loop, fsynced in a thread** (:mod:`pesabridge.store.group_inline`,
  where the reasons are): batches are written and committed on the loop without an
  fsync, a thread fdatasyncs the WAL behind them, and a batch is answered once an fsync
  begun after its ``COMMIT`` has finished. When another connection holds the write lock
  (another process, a poller's thread), the batch goes to the committer thread instead,
  which waits for the lock there, never on the loop.
- **PostgreSQL: in the committer thread**, where waiting on the network does not hold
  up the loop.

Durability: an answer means the batch is on disk. The loop's SQLite connection fsyncs
its WAL itself (see :mod:`~pesabridge.store.group_inline`). The committer thread's SQLite
connection runs ``synchronous=FULL``; the rest of the process keeps ``NORMAL``
(``synchronous`` is per connection). On PostgreSQL every commit is flushed
(``synchronous_commit`` on, the server default).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from typing import Any, TypeVar

import structlog
from sqlalchemy import Connection

from ..metrics import GROUP_COMMIT_SIZE
from .group_batch import FATAL, Bulk, Item, Work, run_batch, settle
from .group_inline import CHECKPOINT_PAGES, InlineCommitter
from .store import Store

__all__ = ["Bulk", "GroupCommitter"]

log = structlog.get_logger("pesabridge.store.group")

T = TypeVar("T")
P = TypeVar("P")
R = TypeVar("R")


class GroupCommitter:
    """Gathers concurrent writes into one transaction per batch; see the module docs."""

    def __init__(
        self,
        store: Store,
        *,
        max_batch: int = 256,
        max_wait: float = 0.002,
        min_batch: int = 16,
        durable: bool = True,
        retries: int = 5,
        inline: bool | None = None,
    ) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.store = store
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.min_batch = min_batch
        """Items worth writing while an fsync is in flight (fewer wait for it to end)."""
        self.durable = durable
        self.retries = retries
        self.inline = store.dialect == "sqlite" if inline is None else inline
        """Commit on the event loop (SQLite's default; see the module docs)."""
        self.batches = 0
        """Transactions committed (for tests and the benchmark)."""
        self.items = 0
        """Items committed."""
        self._queue: queue.SimpleQueue[Item[Any] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._conn: Connection | None = None
        self._inline = InlineCommitter(self)

    @property
    def checkpoints(self) -> int:
        """Checkpoints run by the inline committer (for tests)."""
        return self._inline.checkpoints

    # -- the callers' side --------------------------------------------------------------

    async def submit(self, work: Work[T]) -> T:
        """Run ``work(conn)`` in the next group transaction; returns after the commit."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._enqueue(Item(work, loop, future))
        # A caller that goes away (cancelled) cancels only its future: the work stays in
        # the batch and is committed all the same; settle() skips a finished future.
        return await future

    async def submit_bulk(self, bulk: Bulk[P, R], payload: P) -> R:
        """Hand ``payload`` to ``bulk`` together with the batch's other payloads for it.

        Items whose ``bulk`` functions are equal are merged (the same function, or the
        same bound method of the same object); ``bulk(conn, [payload])`` must be the
        work of this item alone (it is what runs should the merged call fail).
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[R] = loop.create_future()
        work: Work[R] = lambda conn: bulk(conn, [payload])[0]  # noqa: E731 - the fallback
        self._enqueue(Item(work, loop, future, bulk=bulk, payload=payload))
        return await future

    def _enqueue(self, item: Item[Any]) -> None:
        if self._closed:
            raise RuntimeError("the group committer is closed")
        if not self.inline:
            self._start()
            self._queue.put(item)
            return
        self._inline.add(item)

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="pesabridge-group-commit", daemon=True
                )
                self._thread.start()

    def close(self) -> None:
        """Commit what is queued, then stop the threads and release the connections."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
        if thread is not None:
            self._queue.put(None)
            thread.join()
        self._inline.close()

    def _to_thread(self, batch: list[Item[Any]]) -> None:
        """Hand a batch the inline side could not write to the committer thread."""
        self._start()
        for item in batch:
            self._queue.put(item)

    # -- the committer thread -----------------------------------------------------------

    def _run(self) -> None:
        stopping = False
        try:
            while not stopping:
                first = self._queue.get()
                if first is None:
                    break
                batch: list[Item[Any]] = [first]
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
            self._release(self._conn)
            self._conn = None

    def _commit(self, batch: list[Item[Any]]) -> None:
        for attempt in range(self.retries):
            try:
                if self._conn is None:
                    self._conn = self._connect(wait=True)
                with self._conn.begin():
                    run_batch(self._conn, batch)
                break
            except FATAL as exc:
                self._release(self._conn)  # a broken connection is not reused
                self._conn = None
                if attempt == self.retries - 1:
                    log.error("group commit failed", items=len(batch), error=str(exc))
                    for item in batch:
                        item.outcome = (False, exc)
                    break
                log.warning("group commit retried", items=len(batch), error=str(exc))
                time.sleep(0.05 * (attempt + 1))
            except BaseException as exc:  # a bug: fail the callers rather than hang them
                self._release(self._conn)
                self._conn = None
                log.exception("group commit crashed", items=len(batch))
                for item in batch:
                    item.outcome = (False, exc)
                break
        self._count(batch)
        # One wake-up per event loop rather than per item: each call_soon_threadsafe
        # writes to the loop's self-pipe.
        by_loop: dict[asyncio.AbstractEventLoop, list[Item[Any]]] = {}
        for item in batch:
            by_loop.setdefault(item.loop, []).append(item)
        for loop, items in by_loop.items():
            with contextlib.suppress(RuntimeError):  # the caller's loop is gone
                loop.call_soon_threadsafe(settle, items)

    # -- connections ----------------------------------------------------------------------

    def _count(self, batch: list[Item[Any]]) -> None:
        committed = sum(1 for item in batch if item.outcome[0])
        if committed:
            self.batches += 1
            self.items += committed
            GROUP_COMMIT_SIZE.observe(committed)

    def _connect(self, *, wait: bool) -> Connection:
        conn = self.store.engine.connect()
        if conn.dialect.name == "sqlite":
            # Outside any transaction (the driver is in autocommit mode: BEGIN is ours).
            raw: Any = conn.connection.driver_connection
            if wait and self.durable:  # the thread: SQLite fsyncs the WAL at each COMMIT
                raw.execute("PRAGMA synchronous=FULL")
            if not wait:
                # The loop's connection keeps NORMAL: the pipeline fsyncs the WAL itself
                # (module docs). BEGIN IMMEDIATE answers "locked" at once instead of
                # sleeping, and the committer checkpoints between its own transactions.
                raw.execute("PRAGMA busy_timeout=0")
                raw.execute("PRAGMA wal_autocheckpoint=0")
        return conn

    def _release(self, conn: Connection | None) -> None:
        """Give ``conn`` back to the pool as the pool made it."""
        if conn is None:
            return
        with contextlib.suppress(Exception):
            if conn.in_transaction():
                conn.rollback()
            if conn.dialect.name == "sqlite":
                raw: Any = conn.connection.driver_connection
                raw.execute("PRAGMA synchronous=NORMAL")
                raw.execute("PRAGMA busy_timeout=30000")
                raw.execute(f"PRAGMA wal_autocheckpoint={CHECKPOINT_PAGES}")
        with contextlib.suppress(Exception):
            conn.close()
