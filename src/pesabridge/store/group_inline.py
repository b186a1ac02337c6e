"""The group committer's inline side (SQLite): batches written on the event loop.

A batch of callbacks is a millisecond or two of Python and SQLite work. Run in a
thread, every statement gives the GIL up and waits to get it back behind the busy event
loop (the interpreter hands it over every 5 ms), which made the thread, not the disk,
the bottleneck. So a flusher task on the loop writes each batch and commits it with
``synchronous=NORMAL``: the ``COMMIT`` appends the WAL frames without an fsync, a
fraction of a millisecond. The fsync thread then calls ``fdatasync`` on the WAL file,
and only when an fsync that *began after* a batch's ``COMMIT`` returned has finished is
that batch answered. While one fsync runs the loop goes on reading, parsing and writing:
the next batch is committed behind it (at once when the disk is idle, or once
``min_batch`` items wait), and the following fsync covers every batch committed
meanwhile. With SQLite's own ``synchronous=FULL`` the fsync happens inside ``COMMIT``,
under the write lock, so nothing could be written while the disk worked. ``BEGIN
IMMEDIATE`` is tried without waiting: when another connection holds the write lock
(another process, a poller's thread), the batch goes to the committer thread instead,
which waits for the lock there, never on the loop.

Durability: an answer means the batch is on disk. On the loop's SQLite connection the
WAL holding the commit has been fsynced (the same guarantee as ``synchronous=FULL``:
SQLite's recovery replays the WAL up to its last complete commit, and a checkpoint
fsyncs the WAL before copying it and the database after, so frames the WAL restarts
over are already in the synced database file).

Checkpoints: SQLite's automatic checkpoint runs inside the ``COMMIT`` that takes the WAL
past 1,000 pages, copying them into the database file and fsyncing it before that
commit returns, so one batch in every twenty or so waited for a checkpoint as well as
its own fsync. The loop's connection turns the automatic checkpoint off and checkpoints
itself in the fsync thread when every written batch has been answered and before the
next ``BEGIN``, at about the same WAL size. Run on the writer's own connection between
its transactions, the checkpoint copies every frame, so the next transaction starts the
WAL file from its beginning again: a WAL overwritten in place rather than grown keeps
each fsync short (no file-size change for the file system to journal: measured here,
0.36 ms per 40-callback commit against 2.9 ms in a growing WAL).
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import Connection

from .group_batch import FATAL, Item, run_batch, settle

if TYPE_CHECKING:
    from .group import GroupCommitter

log = structlog.get_logger("pesabridge.store.group")

CHECKPOINT_PAGES = 1000
"""WAL pages between the inline committer's checkpoints (SQLite's own default)."""


def _wal_path(conn: Connection) -> str | None:
    """The WAL file of ``conn``'s main database; None when there is none to sync.

    A database not in WAL mode gets ``synchronous=FULL`` instead (SQLite syncs its
    journal at each commit); an in-memory one has nothing to make durable.
    """
    raw: Any = conn.connection.driver_connection
    if str(raw.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
        raw.execute("PRAGMA synchronous=FULL")
        return None
    for _seq, name, file in raw.execute("PRAGMA database_list").fetchall():
        if name == "main" and file:
            return f"{file}-wal"
    return None


def _sync_file(path: str) -> None:
    """fdatasync ``path``: every write made to it before the call is on disk after it.

    Opened per call: the file's data is the inode's, whichever descriptor syncs it.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fdatasync(fd)
    finally:
        os.close(fd)


class InlineCommitter:
    """Per event loop: the work waiting, a flusher task, a writer connection, its WAL.

    Owned by a :class:`~pesabridge.store.group.GroupCommitter`, whose settings
    (``max_batch``, ``max_wait``, ``min_batch``, ``durable``) it reads at each use and
    whose connections, counters and committer thread it shares.
    """

    def __init__(self, owner: GroupCommitter) -> None:
        self._owner = owner
        self._pending: dict[asyncio.AbstractEventLoop, list[Item[Any]]] = {}
        self._flushing: set[asyncio.AbstractEventLoop] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._conns: dict[asyncio.AbstractEventLoop, Connection] = {}
        self._fsync: ThreadPoolExecutor | None = None
        # checkpoints of the inline connections: one running per loop at most, and how
        # many items to commit before the next (adjusted to the pages each item takes)
        self._wakeups: dict[asyncio.AbstractEventLoop, asyncio.Event] = {}
        self._wal_paths: dict[asyncio.AbstractEventLoop, str | None] = {}
        self._fresh_wal: set[asyncio.AbstractEventLoop] = set()
        self._since_checkpoint = 0
        self._checkpoint_every = 250
        self.checkpoints = 0
        """Checkpoints run (for tests)."""

    def add(self, item: Item[Any]) -> None:
        """Queue ``item`` on its loop, starting that loop's flusher if none runs."""
        loop = item.loop
        pending = self._pending.get(loop)
        if pending is None:
            pending = self._pending[loop] = []
        pending.append(item)
        wake = self._wakeups.get(loop)
        if wake is not None:
            wake.set()
        if loop not in self._flushing:
            self._flushing.add(loop)
            task = loop.create_task(self._flusher(loop))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def close(self) -> None:
        """Wait for the fsync thread, then release the loops' connections."""
        if self._fsync is not None:
            self._fsync.shutdown(wait=True)
        for loop in list(self._conns):
            self._owner._release(self._conns.pop(loop, None))

    async def _flusher(self, loop: asyncio.AbstractEventLoop) -> None:
        """Commit this loop's pending work, batch after batch, until none is left."""
        owner = self._owner
        try:
            # after the first item, the rest of this loop iteration's requests (and
            # those of max_wait seconds) join the batch
            await asyncio.sleep(owner.max_wait)
            if owner.durable:
                await self._pipeline(loop)
                return
            while True:
                pending = self._pending.get(loop)
                if not pending:
                    return
                batch = pending[: owner.max_batch]
                del pending[: owner.max_batch]
                if await self._write(loop, batch):
                    owner._count(batch)
                    settle(batch)
        finally:
            self._flushing.discard(loop)
            self._wakeups.pop(loop, None)

    async def _pipeline(self, loop: asyncio.AbstractEventLoop) -> None:
        """Write batches on the loop while the fsync thread makes earlier ones durable.

        A batch is answered after an fsync of the WAL that began after its ``COMMIT``
        returned. While one fsync runs, the loop writes the next batch (once
        ``min_batch`` items wait, or at once when the disk is idle), so one fsync covers
        every batch committed during the previous one, and the round time of a callback
        is about one fsync plus one batch's writing rather than their sum.
        """
        owner = self._owner
        wake = self._wakeups[loop] = asyncio.Event()
        pending = self._pending.setdefault(loop, [])
        committed: list[list[Item[Any]]] = []  # written, waiting for an fsync to start
        syncing: list[list[Item[Any]]] = []  # covered by the fsync in flight
        sync: asyncio.Future[None] | None = None
        try:
            while True:
                if sync is not None and sync.done():
                    self._synced(syncing, sync)
                    sync, syncing = None, []
                due = self._since_checkpoint >= self._checkpoint_every
                if due and sync is None and not committed:
                    # between transactions, everything answered: the WAL can restart
                    await self._checkpoint_inline(loop)
                    continue
                if pending and not due and (sync is None or len(pending) >= owner.min_batch):
                    batch = pending[: owner.max_batch]
                    del pending[: owner.max_batch]
                    if await self._write(loop, batch):
                        committed.append(batch)
                    continue
                if sync is None and committed:
                    path = self._wal_paths.get(loop)
                    syncing, committed = committed, []
                    if path is None:  # no WAL file to sync (an in-memory database)
                        self._synced(syncing, None)
                        syncing = []
                        continue
                    sync = loop.run_in_executor(self._fsync_pool(), _sync_file, path)
                    sync.add_done_callback(lambda _done: wake.set())
                    continue
                if sync is None and not pending:
                    return
                wake.clear()
                await wake.wait()
        finally:
            # cancelled (the loop is shutting down): what was written is committed and
            # the WAL is in the page cache; close() waits for the fsync thread.
            if sync is not None and not sync.done():
                sync.cancel()

    def _synced(self, batches: list[list[Item[Any]]], sync: asyncio.Future[None] | None) -> None:
        """Answer the batches an fsync covered (or fail them, should the fsync fail)."""
        error: BaseException | None = None
        if sync is not None:  # a cancelled fsync proves nothing: not answered as done
            error = asyncio.CancelledError() if sync.cancelled() else sync.exception()
        for batch in batches:
            if error is not None:
                for item in batch:
                    item.outcome = (False, error)
            else:
                self._owner._count(batch)
            settle(batch)
        if error is not None:
            log.error("group commit fsync failed", error=str(error))

    def _fsync_pool(self) -> ThreadPoolExecutor:
        if self._fsync is None:
            self._fsync = ThreadPoolExecutor(1, thread_name_prefix="pesabridge-fsync")
        return self._fsync

    async def _write(self, loop: asyncio.AbstractEventLoop, batch: list[Item[Any]]) -> bool:
        """Run and commit the batch on the loop; False: it went to the thread, or failed.

        The connection runs ``synchronous=NORMAL``: the ``COMMIT`` writes the WAL
        frames without an fsync (a fraction of a millisecond); the pipeline's fsync
        makes them durable before anyone is answered. The first commit of a connection
        and the first after a checkpoint may start the WAL file afresh, and SQLite then
        fsyncs its new header inside that ``COMMIT``: that one goes to the fsync thread,
        so the loop never waits for the disk.
        """
        owner = self._owner
        conn = self._conns.get(loop)
        if conn is None:
            conn = self._conns[loop] = owner._connect(wait=False)
            self._wal_paths[loop] = _wal_path(conn)
            self._fresh_wal.add(loop)
        try:
            transaction = conn.begin()
        except FATAL:  # "database is locked": someone else is writing; wait off the loop
            owner._release(self._conns.pop(loop, None))
            owner._to_thread(batch)
            return False
        try:
            run_batch(conn, batch)
            if loop in self._fresh_wal:
                await loop.run_in_executor(self._fsync_pool(), transaction.commit)
                self._fresh_wal.discard(loop)
            else:
                transaction.commit()
        except asyncio.CancelledError:
            # The loop is shutting down. A COMMIT already handed to the fsync thread
            # finishes there (close() waits for it); nobody is left to answer.
            raise
        except FATAL as exc:
            log.info("inline group commit handed to the thread", error=str(exc))
            owner._release(self._conns.pop(loop, None))
            owner._to_thread(batch)  # run again there, from the start
            return False
        except BaseException as exc:  # a bug: fail the callers rather than hang them
            owner._release(self._conns.pop(loop, None))
            log.exception("group commit crashed", items=len(batch))
            for item in batch:
                item.outcome = (False, exc)
            settle(batch)
            return False
        self._since_checkpoint += len(batch)
        return True

    async def _checkpoint_inline(self, loop: asyncio.AbstractEventLoop) -> None:
        """Checkpoint on the loop's writer connection, in the fsync thread, and wait."""
        items, self._since_checkpoint = self._since_checkpoint, 0
        conn = self._conns.get(loop)
        if conn is None:
            return
        await loop.run_in_executor(self._fsync_pool(), self._checkpoint, conn, items)
        self._fresh_wal.add(loop)

    def _checkpoint(self, conn: Connection, items: int) -> None:
        """Copy the WAL into the database file (in the fsync thread, between transactions).

        Run on the writer's connection with no transaction open, a PASSIVE checkpoint
        copies every frame unless a reader still needs an older one; the next
        ``BEGIN`` then restarts the WAL from its start. How many pages the items since
        the last checkpoint took sets how many items to commit before the next.
        """
        try:
            raw: Any = conn.connection.driver_connection
            _busy, pages, _copied = raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except Exception as exc:  # an I/O error: the next commit meets it and says so
            log.warning("group commit checkpoint failed", error=str(exc))
            return
        self.checkpoints += 1
        if pages > 0:
            self._checkpoint_every = max(16, min(100_000, items * CHECKPOINT_PAGES // pages))
