"""The outbox contract: claiming, leases, outcomes and replay, identically on both backends."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from pesabridge.formats.base import Observation
from pesabridge.model import EAT
from pesabridge.store import AttemptRecord, Claimed, Sighting, Store, utcnow
from pesabridge.store import outbox as outbox_module
from pesabridge.store.schema import attempts, deliveries

from ..helpers import txn

CALLBACK = Sighting(kind="callback", origin="callback")
LONG = timedelta(minutes=10)


def seed(store: Store, n: int, sinks: Sequence[str] = ("erp",), prefix: str = "SLK") -> list[int]:
    """Record ``n`` new transactions routed to ``sinks``; returns their ids."""
    observations = [
        Observation(txn(f"{prefix}{i:07d}"), f"req-{prefix}-{i}", None, f"{i}".encode())
        for i in range(n)
    ]
    return store.record(observations, CALLBACK, lambda _t: list(sinks)).transaction_ids


def outcome(claimed: Claimed, worker: str, result: str, **extra: Any) -> AttemptRecord:
    now = utcnow()
    return AttemptRecord(
        worker=worker,
        number=claimed.attempt,
        started_at=now,
        finished_at=now,
        outcome=result,
        **extra,
    )


def delivery(store: Store, delivery_id: int) -> dict[str, Any]:
    with store.read() as conn:
        row = conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).mappings()
        return dict(row.one())


def attempt_rows(store: Store, delivery_id: int) -> list[dict[str, Any]]:
    with store.read() as conn:
        rows = conn.execute(
            select(attempts).where(attempts.c.delivery_id == delivery_id).order_by(attempts.c.id)
        ).mappings()
        return [dict(row) for row in rows]


def claim_at(store: Store, worker: str, now: datetime, **kwargs: Any) -> list[Claimed]:
    """Claim as if the clock read ``now`` (to step past leases and backoff without sleeping)."""
    kwargs.setdefault("limit", 100)
    kwargs.setdefault("lease", LONG)
    with store.write() as conn:
        return outbox_module.claim(conn, worker, now=now, **kwargs)


# -- idempotency keys ---------------------------------------------------------------------------


def test_idempotency_keys_are_stable_across_databases(store: Store, tmp_path: Path) -> None:
    sinks = ("erp", "bank")
    seed(store, 3, sinks)
    other = Store.open(f"sqlite:///{tmp_path / 'second-install.db'}")
    try:
        seed(other, 5, sinks, prefix="XYZ")  # different ids for the same transactions
        seed(other, 3, sinks)
        keys_here = {
            (c.transaction.receipt, c.sink): c.idempotency_key for c in store.claim("w", limit=100)
        }
        keys_there = {
            (c.transaction.receipt, c.sink): c.idempotency_key for c in other.claim("w", limit=100)
        }
    finally:
        other.close()

    assert len(keys_here) == 6
    assert all(keys_there[k] == v for k, v in keys_here.items())
    assert len(set(keys_here.values())) == 6  # distinct per transaction and per sink
    assert all(0 < len(key) <= 100 for key in keys_here.values())
    listed = {v.idempotency_key for v in store.deliveries()}
    assert listed == set(keys_here.values())


# -- claiming -------------------------------------------------------------------------------------


def test_claim_returns_due_rows_only_with_their_transaction(store: Store) -> None:
    before = utcnow()
    (txn_id,) = seed(store, 1, ("erp", "bank"))

    assert claim_at(store, "w1", before - timedelta(seconds=1)) == []  # not yet due
    assert store.claim("w1", sinks=["nowhere"]) == []
    (claimed,) = store.claim("w1", sinks=["bank"])
    assert (claimed.transaction_id, claimed.sink, claimed.attempt) == (txn_id, "bank", 1)
    assert claimed.transaction == txn("SLK0000000")
    assert str(claimed.transaction.amount) == "1500.00"
    row = delivery(store, claimed.delivery_id)
    assert (row["state"], row["lease_owner"], row["attempts"]) == ("in_flight", "w1", 1)
    assert row["lease_expires_at"] > utcnow() + timedelta(seconds=50)

    # Leased rows are not handed out again; the other sink's row still is.
    (other,) = store.claim("w2")
    assert other.sink == "erp"
    assert store.claim("w3") == []


def test_claim_respects_limit_and_oldest_first(store: Store) -> None:
    seed(store, 5)
    first = store.claim("w1", limit=2)
    second = store.claim("w2", limit=10)
    assert len(first) == 2
    assert len(second) == 3
    assert max(c.delivery_id for c in first) < min(c.delivery_id for c in second)
    assert [c.delivery_id for c in second] == sorted(c.delivery_id for c in second)


def test_an_expired_lease_makes_the_row_claimable_again(store: Store) -> None:
    seed(store, 1)
    (first,) = store.claim("w1", lease=timedelta(seconds=30))
    expires = delivery(store, first.delivery_id)["lease_expires_at"]
    assert store.claim("w2") == []
    assert claim_at(store, "w2", expires - timedelta(seconds=1)) == []  # w1 still holds it
    (again,) = claim_at(store, "w2", expires + timedelta(milliseconds=1))  # w1 died

    assert again.delivery_id == first.delivery_id
    assert (first.attempt, again.attempt) == (1, 2)
    assert again.idempotency_key == first.idempotency_key  # the back office can dedupe
    row = delivery(store, again.delivery_id)
    assert (row["lease_owner"], row["attempts"]) == ("w2", 2)


# -- outcomes -------------------------------------------------------------------------------------


def test_finish_delivered(store: Store) -> None:
    seed(store, 1)
    (claimed,) = store.claim("w1")
    record = outcome(claimed, "w1", "delivered", status_code=201, response='{"ok":true}')

    assert store.finish(claimed, record) is True

    row = delivery(store, claimed.delivery_id)
    assert (row["state"], row["last_status"], row["response"]) == ("delivered", 201, '{"ok":true}')
    assert row["delivered_at"] == record.finished_at
    assert row["lease_owner"] is None
    assert row["lease_expires_at"] is None
    assert claim_at(store, "w2", utcnow() + timedelta(days=30)) == []  # never sent again
    assert [v.state for v in store.deliveries(state="delivered")] == ["delivered"]
    assert store.deliveries(failed=True) == []
    (attempt,) = attempt_rows(store, claimed.delivery_id)
    assert (attempt["number"], attempt["worker"], attempt["outcome"], attempt["status_code"]) == (
        1,
        "w1",
        "delivered",
        201,
    )
    assert attempt["started_at"] == record.started_at


def test_finish_retry_is_not_claimable_before_next_attempt_at(store: Store) -> None:
    seed(store, 1)
    (claimed,) = store.claim("w1")
    later = utcnow() + timedelta(minutes=5)
    record = outcome(claimed, "w1", "retry", status_code=503, error="503 Service Unavailable")

    assert store.finish(claimed, record, next_attempt_at=later) is True

    row = delivery(store, claimed.delivery_id)
    assert (row["state"], row["next_attempt_at"], row["last_error"]) == (
        "pending",
        later,
        "503 Service Unavailable",
    )
    assert store.claim("w2") == []
    assert claim_at(store, "w2", later - timedelta(seconds=1)) == []
    (again,) = claim_at(store, "w2", later)
    assert (again.delivery_id, again.attempt) == (claimed.delivery_id, 2)
    (view,) = [v for v in store.deliveries(state="in_flight")]
    assert view.last_status == 503


def test_retrying_deliveries_are_listed_as_failed(store: Store) -> None:
    seed(store, 2)
    first, second = store.claim("w1")
    store.finish(
        first,
        outcome(first, "w1", "retry", error="timeout"),
        next_attempt_at=utcnow() + timedelta(minutes=1),
    )
    store.finish(second, outcome(second, "w1", "dead", status_code=422, error="422 bad account"))
    failed = {v.id: (v.state, v.last_error) for v in store.deliveries(failed=True)}
    assert failed == {
        first.delivery_id: ("pending", "timeout"),
        second.delivery_id: ("dead", "422 bad account"),
    }


def test_dead_letters_stay_dead_until_replayed(store: Store) -> None:
    seed(store, 3)
    a, b, c = store.claim("w1")
    store.finish(a, outcome(a, "w1", "dead", status_code=400, error="400 unknown paybill"))
    store.finish(b, outcome(b, "w1", "dead", status_code=404, error="404"))
    store.finish(c, outcome(c, "w1", "delivered", status_code=200))

    assert claim_at(store, "w2", utcnow() + timedelta(days=30)) == []
    assert {v.id for v in store.deliveries(state="dead")} == {a.delivery_id, b.delivery_id}
    assert store.status()["deliveries"] == {"erp": {"dead": 2, "delivered": 1}}

    assert store.replay(ids=[a.delivery_id], dead=True) == 1
    assert delivery(store, b.delivery_id)["state"] == "dead"
    assert store.replay(dead=True) == 1
    assert store.replay(dead=True) == 0
    assert store.replay(ids=[c.delivery_id]) == 0  # a delivered row is never sent again

    again = store.claim("w2")
    assert sorted(x.delivery_id for x in again) == sorted([a.delivery_id, b.delivery_id])
    assert all(x.attempt == 1 for x in again)  # replay starts the count afresh
    assert [r["outcome"] for r in attempt_rows(store, a.delivery_id)] == ["dead"]  # history kept
    assert store.replay(dead=True) == 0  # in flight: not touched


def test_replay_by_sink(store: Store) -> None:
    seed(store, 2, ("erp", "bank"))
    for claimed in store.claim("w1"):
        store.finish(claimed, outcome(claimed, "w1", "dead", error="gone"))
    assert store.replay(dead=True, sink="bank") == 2
    assert {c.sink for c in store.claim("w2")} == {"bank"}


def test_a_worker_that_lost_its_lease_cannot_retry_or_dead_letter(store: Store) -> None:
    seed(store, 1)
    (stale,) = store.claim("w1", lease=timedelta(milliseconds=50))
    time.sleep(0.1)
    (current,) = store.claim("w2")

    assert (
        store.finish(
            stale, outcome(stale, "w1", "retry", error="timeout"), next_attempt_at=utcnow()
        )
        is False
    )
    assert store.finish(stale, outcome(stale, "w1", "dead", status_code=400)) is False
    row = delivery(store, current.delivery_id)
    assert (row["state"], row["lease_owner"], row["attempts"]) == ("in_flight", "w2", 2)
    assert store.claim("w3") == []  # still w2's

    # The slow worker did get through in the end: that success is recorded.
    assert store.finish(stale, outcome(stale, "w1", "delivered", status_code=200)) is True
    assert delivery(store, current.delivery_id)["state"] == "delivered"
    # w2's own failure cannot turn a delivered row back into a retry.
    assert store.finish(current, outcome(current, "w2", "retry", error="timeout")) is False
    assert delivery(store, current.delivery_id)["state"] == "delivered"
    outcomes = [
        (r["worker"], r["number"], r["outcome"]) for r in attempt_rows(store, current.delivery_id)
    ]
    assert outcomes == [
        ("w1", 1, "retry"),
        ("w1", 1, "dead"),
        ("w1", 1, "delivered"),
        ("w2", 2, "retry"),
    ]


def test_a_restarted_worker_with_the_same_name_cannot_act_on_its_old_claim(store: Store) -> None:
    seed(store, 1)
    (stale,) = store.claim("host-1", lease=timedelta(milliseconds=50))
    time.sleep(0.1)
    (current,) = store.claim("host-1")  # the same worker name claims the row again

    assert store.finish(stale, outcome(stale, "host-1", "dead", status_code=400)) is False
    row = delivery(store, current.delivery_id)
    assert (row["state"], row["attempts"]) == ("in_flight", 2)
    assert (
        store.finish(
            current, outcome(current, "host-1", "retry", error="t"), next_attempt_at=utcnow()
        )
        is True
    )
    assert delivery(store, current.delivery_id)["state"] == "pending"


def test_release_hands_back_unsent_claims_without_counting_an_attempt(store: Store) -> None:
    seed(store, 3)
    first, second, third = store.claim("w1", limit=3)
    store.finish(first, outcome(first, "w1", "delivered", status_code=200))
    store.release("w1", [first, second])  # first was delivered meanwhile: left alone
    assert delivery(store, first.delivery_id)["state"] == "delivered"
    row = delivery(store, second.delivery_id)
    assert (row["state"], row["lease_owner"], row["attempts"]) == ("pending", None, 0)
    assert attempt_rows(store, second.delivery_id) == []
    store.release("w2", [third])  # not w2's claim: nothing happens
    assert delivery(store, third.delivery_id)["state"] == "in_flight"

    (again,) = store.claim("w2")  # due as before, and its first real attempt
    assert (again.delivery_id, again.attempt) == (second.delivery_id, 1)


def test_claims_and_outcomes_in_batches_larger_than_one_statement(store: Store) -> None:
    # More rows than one statement's id list holds (claims.CHUNK): claimed, finished and
    # recorded alike, each with its own guard.
    seed(store, 150)
    batch = store.claim("w1", limit=150, lease=LONG)
    assert len(batch) == 150
    assert len({c.delivery_id for c in batch}) == 150
    finished = [
        (c, outcome(c, "w1", "delivered" if i % 3 else "retry", status_code=200), utcnow())
        for i, c in enumerate(batch)
    ]
    assert store.finish_many(finished) == [True] * 150
    # Again (a late duplicate): delivered rows were already delivered, retried ones are
    # no longer held by w1; each attempt is still on record.
    assert store.finish_many(finished) == [False] * 150
    counts = Counter(delivery(store, c.delivery_id)["state"] for c in batch)
    assert counts == {"delivered": 100, "pending": 50}
    assert sum(len(attempt_rows(store, c.delivery_id)) for c in batch) == 300


# -- concurrency ------------------------------------------------------------------------------


def test_a_batch_mixing_current_and_stale_outcomes_records_each_by_its_own_guard(
    store: Store,
) -> None:
    # Outcomes are written without reading the rows first: when some guard fails, the
    # batch must still say, per attempt, which were recorded, and change only those rows.
    seed(store, 6)
    a, b, c, d, e, f = store.claim("w1", limit=6, lease=LONG)
    assert store.finish(b, outcome(b, "w1", "delivered", status_code=200))
    store.release("w1", [d])
    (d2,) = store.claim("w2", limit=1, lease=LONG)  # d, now w2's
    assert d2.delivery_id == d.delivery_id
    finished = [
        (a, outcome(a, "w1", "delivered", status_code=200), None),
        (b, outcome(b, "w1", "delivered", status_code=201), None),  # already delivered
        (c, outcome(c, "w1", "retry", status_code=503), utcnow() + LONG),
        (d, outcome(d, "w1", "dead", status_code=400), None),  # w2 holds it now
        (e, outcome(e, "w1", "dead", status_code=400), None),
        (f, outcome(f, "w1", "delivered", status_code=200), None),
    ]
    assert store.finish_many(finished) == [True, False, True, False, True, True]
    states = [delivery(store, x.delivery_id)["state"] for x in (a, b, c, d, e, f)]
    assert states == ["delivered", "delivered", "pending", "in_flight", "dead", "delivered"]
    assert delivery(store, b.delivery_id)["last_status"] == 200  # the first success stays
    assert delivery(store, d.delivery_id)["lease_owner"] == "w2"
    # Every attempt is on record, the stale ones included, each once.
    assert [len(attempt_rows(store, x.delivery_id)) for x in (a, b, c, d, e, f)] == [
        1,
        2,
        1,
        1,
        1,
        1,
    ]


def test_concurrent_claimers_in_threads_never_share_a_leased_row(store: Store) -> None:
    ids = seed(store, 120, ("erp", "bank"))
    assert len(ids) == 120
    workers = 4
    barrier = threading.Barrier(workers)
    claims: dict[str, list[int]] = {f"t{n}": [] for n in range(workers)}
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            barrier.wait()
            while batch := store.claim(name, limit=5, lease=LONG):
                claims[name].extend(c.delivery_id for c in batch)
                time.sleep(0.005)  # a worker delivering: the others get their turn
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(name,)) for name in claims]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    every = [d for claimed in claims.values() for d in claimed]
    assert [d for d, n in Counter(every).items() if n > 1] == []
    assert len(every) == 240
    if store.dialect == "postgresql":  # SQLite's busy wait may let one thread take them all
        assert sum(1 for claimed in claims.values() if claimed) >= 2  # side by side


def test_threads_claiming_and_finishing_deliver_each_row_once(store: Store) -> None:
    seed(store, 60, ("erp", "bank"))
    workers = 4
    barrier = threading.Barrier(workers)
    held: set[int] = set()
    held_lock = threading.Lock()
    overlaps: list[int] = []
    refused: list[int] = []
    errors: list[BaseException] = []

    def work(name: str) -> None:
        try:
            barrier.wait()
            while batch := store.claim(name, limit=3, lease=LONG):
                with held_lock:
                    overlaps.extend(c.delivery_id for c in batch if c.delivery_id in held)
                    held.update(c.delivery_id for c in batch)
                for c in batch:
                    # Fail every first attempt, so rows come round again for another worker.
                    result = "retry" if c.attempt == 1 else "delivered"
                    with held_lock:
                        held.discard(c.delivery_id)
                    if not store.finish(c, outcome(c, name, result), next_attempt_at=utcnow()):
                        refused.append(c.delivery_id)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(f"t{n}",)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert overlaps == []
    assert refused == []
    assert store.status()["deliveries"] == {"erp": {"delivered": 60}, "bank": {"delivered": 60}}
    with store.read() as conn:
        rows = conn.execute(select(attempts.c.delivery_id, attempts.c.number, attempts.c.outcome))
        history = Counter((r.delivery_id, r.number, r.outcome) for r in rows)
    assert len(history) == 240
    assert set(history.values()) == {1}


_CLAIMER = r"""
import json, sys
from pesabridge.store import AttemptRecord, Store, utcnow
from datetime import timedelta

url, name, limit = sys.argv[1], sys.argv[2], int(sys.argv[3])
store = Store.open(url, migrate=False)
store.status()  # connected
print("ready", flush=True)
sys.stdin.readline()
claimed, refused, rounds = [], [], 0
while True:
    batch = store.claim(name, limit=limit, lease=timedelta(minutes=10))
    rounds += 1
    if not batch:
        break
    for c in batch:
        claimed.append(c.delivery_id)
        now = utcnow()
        record = AttemptRecord(name, c.attempt, now, now, "delivered", status_code=200)
        if not store.finish(c, record):
            refused.append(c.delivery_id)
store.close()
print(json.dumps({"claimed": claimed, "refused": refused, "rounds": rounds}), flush=True)
"""


def test_claimers_in_separate_processes_never_share_a_row(store: Store) -> None:
    """`pesabridge worker` on several hosts (PostgreSQL), or beside `run` (SQLite)."""
    seed(store, 150, ("erp", "bank"))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _CLAIMER, store.url, f"proc-{n}", "3"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(3)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:  # start them together
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    reports = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        reports.append(json.loads(out))

    every = [d for report in reports for d in report["claimed"]]
    assert [d for d, n in Counter(every).items() if n > 1] == []
    assert len(every) == 300
    assert all(report["refused"] == [] for report in reports)
    if store.dialect == "postgresql":  # SQLite's busy wait may let one process take them all
        assert sum(1 for report in reports if report["claimed"]) >= 2
    assert store.status()["deliveries"] == {"erp": {"delivered": 150}, "bank": {"delivered": 150}}
    with store.read() as conn:
        numbers = [r.number for r in conn.execute(select(attempts.c.number))]
    assert len(numbers) == 300
    assert set(numbers) == {1}


def test_claim_handles_aware_times_in_any_zone(store: Store) -> None:
    """A ``next_attempt_at`` given in East Africa Time means the same instant."""
    seed(store, 1)
    (claimed,) = store.claim("w1")
    later_utc = utcnow() + timedelta(minutes=5)
    store.finish(
        claimed, outcome(claimed, "w1", "retry"), next_attempt_at=later_utc.astimezone(EAT)
    )
    assert claim_at(store, "w2", later_utc - timedelta(seconds=1)) == []
    assert len(claim_at(store, "w2", later_utc.astimezone(UTC))) == 1
