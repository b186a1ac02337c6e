"""The group committer: one transaction for many callers, failures kept to their caller."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from sqlalchemy import Connection, select

from pesabridge.store import Sighting, Store, utcnow
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


def test_sqlite_connection_is_durable_only_for_the_committer(sqlite_url: str) -> None:
    store = Store.open(sqlite_url)
    committer = GroupCommitter(store)
    try:
        conn = committer._connection()
        raw = conn.connection.driver_connection
        assert raw is not None
        assert raw.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        committer._release()
        with store.engine.connect() as other:
            level = other.connection.driver_connection.execute(  # type: ignore[union-attr]
                "PRAGMA synchronous"
            ).fetchone()[0]
        assert level == 1  # NORMAL, the rest of the process unchanged
    finally:
        committer.close()
        store.close()
