"""The group committer: one transaction for many callers, failures kept to their caller."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
from sqlalchemy import Connection, select

from pesabridge.store import Sighting, Store, group_inline, utcnow
from pesabridge.store.group import GroupCommitter
from pesabridge.store.ledger import RecordResult, record_batch
from pesabridge.store.schema import transactions

from ..helpers import observed, payment

SIGHTING = Sighting("callback", "callback")


def recorder(receipt: str) -> Callable[[Connection], RecordResult]:
    def work(conn: Connection) -> RecordResult:
        return record_batch(
            conn, [observed(payment(receipt))], SIGHTING, lambda _t: ["erp"], utcnow()
        )

    return work


async def test_concurrent_writes_share_a_transaction(store: Store) -> None:
    committer = GroupCommitter(store, max_wait=0.02)
    try:
        results = await asyncio.gather(
            *(committer.submit(recorder(f"SG{i:06d}")) for i in range(50))
        )
    finally:
        committer.close()
    assert [r.new for r in results] == [1] * 50
    assert committer.items == 50
    assert committer.batches < 10
    assert store.status()["transactions"] == 50


async def test_one_callers_failure_does_not_fail_the_others(store: Store) -> None:
    committer = GroupCommitter(store, max_wait=0.02)

    def broken(conn: Connection) -> None:
        conn.execute(transactions.insert().values(provider="x"))  # NOT NULL violations

    def boom(_conn: Connection) -> None:
        raise ValueError("a bug in one caller")

    try:
        outcomes = await asyncio.gather(
            committer.submit(recorder("SG000001")),
            committer.submit(broken),
            committer.submit(boom),
            committer.submit(recorder("SG000002")),
            return_exceptions=True,
        )
    finally:
        committer.close()
    assert isinstance(outcomes[0], RecordResult)
    assert isinstance(outcomes[1], Exception)
    assert isinstance(outcomes[2], ValueError)
    assert isinstance(outcomes[3], RecordResult)
    with store.read() as conn:
        got = sorted(r[0] for r in conn.execute(select(transactions.c.receipt)))
    assert got == ["SG000001", "SG000002"]


async def test_the_same_receipt_twice_in_one_batch_is_one_transaction(store: Store) -> None:
    committer = GroupCommitter(store, max_wait=0.02)
    try:
        first, second = await asyncio.gather(
            committer.submit(recorder("SG000009")),
            committer.submit(recorder("SG000009")),
        )
    finally:
        committer.close()
    assert sorted([first.new, second.new]) == [0, 1]
    assert store.status()["transactions"] == 1


async def test_closed_committer_refuses_work(store: Store) -> None:
    committer = GroupCommitter(store)
    committer.close()
    with pytest.raises(RuntimeError):
        await committer.submit(recorder("SG000010"))


def test_sqlite_connections_are_durable_only_for_the_committer(sqlite_url: str) -> None:
    """The thread's connection has SQLite fsync each COMMIT; the loop's syncs the WAL itself."""
    store = Store.open(sqlite_url)
    committer = GroupCommitter(store)
    try:
        threaded = committer._connect(wait=True)
        raw = threaded.connection.driver_connection
        assert raw is not None
        assert raw.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        committer._release(threaded)
        inline = committer._connect(wait=False)
        raw = inline.connection.driver_connection
        assert raw is not None
        assert raw.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 0
        assert group_inline._wal_path(inline) == sqlite_url.removeprefix("sqlite:///") + "-wal"
        committer._release(inline)
        with store.engine.connect() as other:
            pooled = other.connection.driver_connection
            assert pooled is not None
            assert pooled.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
            assert pooled.execute("PRAGMA wal_autocheckpoint").fetchone()[0] == 1000
    finally:
        committer.close()
        store.close()


async def test_an_answer_waits_for_an_fsync_begun_after_its_commit(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nobody is answered before the WAL holding their commit has been fsynced."""
    store = Store.open(sqlite_url)
    committer = GroupCommitter(store, max_wait=0)
    real_sync = group_inline._sync_file
    entered = threading.Event()
    release = threading.Event()
    synced: list[int] = []  # transactions in the ledger when each fsync began

    def held_sync(path: str) -> None:
        with sqlite3.connect(sqlite_url.removeprefix("sqlite:///")) as reader:
            synced.append(reader.execute("select count(*) from transactions").fetchone()[0])
        entered.set()
        release.wait(10)
        real_sync(path)

    monkeypatch.setattr(group_inline, "_sync_file", held_sync)
    try:
        first = asyncio.ensure_future(committer.submit(recorder("SG000501")))
        await asyncio.to_thread(entered.wait, 10)
        assert synced == [1]  # committed before its fsync began
        second = asyncio.ensure_future(committer.submit(recorder("SG000502")))
        await asyncio.sleep(0.1)  # one item: it waits for the fsync in flight to end
        assert not first.done()  # committed, not yet synced: not answered
        assert not second.done()
        release.set()
        assert (await first).new == 1
        assert (await second).new == 1
    finally:
        release.set()
        committer.close()
    assert synced == [1, 2]  # the second commit had an fsync of its own, after it
    assert store.status()["transactions"] == 2
    store.close()


async def test_the_committer_checkpoints_and_restarts_the_wal(sqlite_url: str) -> None:
    """Checkpoints run between batches, so the WAL file stops growing."""
    store = Store.open(sqlite_url)
    committer = GroupCommitter(store, max_wait=0.005)
    wal = Path(sqlite_url.removeprefix("sqlite:///") + "-wal")
    sizes = []
    try:
        for round_ in range(30):
            await asyncio.gather(
                *(committer.submit(recorder(f"SW{round_:03d}{i:04d}")) for i in range(100))
            )
            sizes.append(wal.stat().st_size)
    finally:
        committer.close()
    assert committer.checkpoints >= 2
    assert sizes[-1] == max(sizes[len(sizes) // 2 :])  # reused from its start, not grown
    assert max(sizes) < 32 * 1024 * 1024
    assert store.status()["transactions"] == 3000
    store.close()


def bulk_recorder(calls: list[int]) -> Callable[[Connection, Sequence[str]], list[RecordResult]]:
    """A bulk function recording one transaction per receipt, counting its calls."""

    def work(conn: Connection, receipts: Sequence[str]) -> list[RecordResult]:
        calls.append(len(receipts))
        if "BAD" in receipts:
            raise ValueError("a bad payload")
        result = record_batch(
            conn, [observed(payment(r)) for r in receipts], SIGHTING, lambda _t: ["erp"], utcnow()
        )
        return [
            RecordResult(new=int(i in result.new_ids), transaction_ids=[i])
            for i in result.transaction_ids
        ]

    return work


async def test_bulk_work_of_a_batch_is_merged_into_one_call(store: Store) -> None:
    calls: list[int] = []
    bulk = bulk_recorder(calls)
    committer = GroupCommitter(store, max_wait=0.02)
    try:
        results = await asyncio.gather(
            *(committer.submit_bulk(bulk, f"SB{i:06d}") for i in range(40))
        )
    finally:
        committer.close()
    assert [r.new for r in results] == [1] * 40
    assert len({r.transaction_ids[0] for r in results}) == 40
    assert sum(calls) == 40
    assert len(calls) < 5  # merged, not one call per caller
    assert store.status()["transactions"] == 40


async def test_a_bad_payload_in_merged_work_fails_only_its_caller(store: Store) -> None:
    calls: list[int] = []
    bulk = bulk_recorder(calls)
    committer = GroupCommitter(store, max_wait=0.02)
    try:
        outcomes = await asyncio.gather(
            committer.submit_bulk(bulk, "SB000101"),
            committer.submit_bulk(bulk, "BAD"),
            committer.submit_bulk(bulk, "SB000102"),
            return_exceptions=True,
        )
    finally:
        committer.close()
    assert isinstance(outcomes[1], ValueError)
    assert [o.new for o in (outcomes[0], outcomes[2]) if isinstance(o, RecordResult)] == [1, 1]
    assert calls[0] == 3  # tried merged first, then one by one
    assert store.status()["transactions"] == 2


async def test_inline_commit_waits_for_a_busy_lock_off_the_event_loop(sqlite_url: str) -> None:
    """SQLite commits on the loop; another writer holding the lock sends it to the thread."""
    store = Store.open(sqlite_url)
    committer = GroupCommitter(store, max_wait=0)
    assert committer.inline
    database = sqlite_url.removeprefix("sqlite:///")
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process writing, as far as SQLite knows
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    async def release_later() -> None:
        await asyncio.sleep(0.3)
        holder.execute("COMMIT")

    ticking = asyncio.create_task(ticker())
    try:
        result, _ = await asyncio.gather(committer.submit(recorder("SG000301")), release_later())
    finally:
        ticking.cancel()
        committer.close()
        holder.close()
    assert result.new == 1
    assert ticks >= 10  # the loop kept running while the thread waited for the lock
    assert store.status()["transactions"] == 1
    store.close()


async def test_a_caller_that_goes_away_still_has_its_work_committed(store: Store) -> None:
    committer = GroupCommitter(store, max_wait=0.05)
    try:
        waiting = asyncio.ensure_future(committer.submit(recorder("SG000401")))
        await asyncio.sleep(0)  # queued
        waiting.cancel()  # the client disconnected
        other = await committer.submit(recorder("SG000402"))
    finally:
        committer.close()
    assert other.new == 1
    assert waiting.cancelled()
    assert store.status()["transactions"] == 2  # the first was written all the same


async def test_a_failed_fsync_answers_nobody_as_done(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An fsync error (EIO) fails every caller it covered: none is told it is stored."""
    store = Store.open(sqlite_url)
    committer = GroupCommitter(store, max_wait=0.01)

    def broken_sync(_path: str) -> None:
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(group_inline, "_sync_file", broken_sync)
    try:
        outcomes = await asyncio.gather(
            committer.submit(recorder("SG000601")),
            committer.submit(recorder("SG000602")),
            return_exceptions=True,
        )
    finally:
        committer.close()
        store.close()
    assert all(isinstance(o, OSError) for o in outcomes)
