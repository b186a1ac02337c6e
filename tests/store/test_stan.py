"""Durable STANs: unique per sink per day, across threads, processes and restarts."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from pesabridge.errors import StoreError
from pesabridge.store import Store
from pesabridge.store import stan as stans
from pesabridge.store.schema import stan_counters


def test_consecutive_per_sink_and_day(store: Store) -> None:
    switch = stans.DurableStanAllocator(store, "switch")
    other = stans.DurableStanAllocator(store, "other-host")
    assert [switch.allocate() for _ in range(3)] == [1, 2, 3]
    assert other.allocate() == 1  # sinks count independently
    with store.write() as conn:
        assert stans.allocate(conn, "switch", "2024-05-07", 2) == [1, 2]  # a new day restarts
        assert stans.allocate(conn, "switch", switch.day(), 2) == [4, 5]


def test_day_is_the_hosts_day(store: Store) -> None:
    allocator = stans.DurableStanAllocator(store, "switch")
    # 22:30 UTC on 6 May is 01:30 on 7 May in Nairobi
    assert allocator.day(datetime(2024, 5, 6, 22, 30, tzinfo=UTC)) == "2024-05-07"


def test_survives_a_restart(store: Store, db_url: str) -> None:
    assert stans.DurableStanAllocator(store, "switch").allocate() == 1
    reopened = Store.open(db_url)
    try:
        assert stans.DurableStanAllocator(reopened, "switch").allocate() == 2
    finally:
        reopened.close()


def test_concurrent_allocations_never_repeat(store: Store) -> None:
    allocator = stans.DurableStanAllocator(store, "switch")
    got: list[int] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(25):
            value = allocator.allocate()
            with lock:
                got.append(value)

    threads = [threading.Thread(target=work) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(got) == list(range(1, 101))


def test_exhausted_day_is_an_error_not_a_repeat(store: Store) -> None:
    allocator = stans.DurableStanAllocator(store, "switch")
    with store.write() as conn:
        conn.execute(
            stan_counters.insert().values(sink="switch", day=allocator.day(), last=999_999)
        )
    with pytest.raises(StoreError, match="used every STAN"):
        allocator.allocate()
