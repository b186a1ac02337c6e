"""End to end: ledger -> outbox -> worker -> a real back-office HTTP server.

Every transaction ends delivered exactly once per idempotency key, or dead-lettered with
its reason, whatever the back office does (fail, throttle, time out, refuse).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import timedelta

import pytest
from sqlalchemy import select

from pesabridge.config import parse_config
from pesabridge.delivery import DeliveryWorker, RetryPolicy
from pesabridge.devtools.backoffice import BackOffice, Rule
from pesabridge.sinks.http import HttpSink, PreparedRequest
from pesabridge.store import Claimed, Sighting, Store
from pesabridge.store.schema import attempts, deliveries

from .helpers import observed, payment

FAST_RETRY = RetryPolicy(max_attempts=8, base=0.05, cap=0.2)


def http_sink(url: str, read_timeout: float = 5.0) -> HttpSink:
    config = parse_config(
        {
            "sinks": [
                {
                    "name": "erp",
                    "type": "http",
                    "url": url,
                    "timeout": {"connect": 2, "read": read_timeout},
                }
            ]
        },
        environ={},
    )
    return HttpSink(config.sinks[0])  # type: ignore[arg-type]


def record(store: Store, *receipts: str, reference: str = "INV-1") -> None:
    store.record(
        [observed(payment(r, reference=reference)) for r in receipts],
        Sighting("callback", "callback"),
        lambda _t: ["erp"],
    )


async def drain(worker: DeliveryWorker, store: Store, seconds: float = 30) -> None:
    """Run the worker until nothing is pending or in flight (or fail after ``seconds``)."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        await worker.run_once()
        per_state = store.status()["deliveries"].get("erp", {})
        if not per_state.get("pending") and not per_state.get("in_flight"):
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"deliveries still open after {seconds}s: {store.status()['deliveries']}")


def states(store: Store) -> dict[str, str]:
    return {v.transaction.receipt: v.state for v in store.deliveries(limit=1000)}


async def test_every_delivery_lands_once_despite_failures(
    store: Store, backoffice: BackOffice
) -> None:
    receipts = [f"SG{i:08d}" for i in range(12)]
    record(store, *receipts)
    record(store, "SGREFUSED0", reference="REFUSE")
    backoffice.add_rule(
        Rule(
            status=400,
            times=100,
            body='{"error":"unknown invoice"}',
            match=lambda b: b["reference"] == "REFUSE",
        )
    )
    backoffice.add_rule(Rule(status=503, times=5))
    backoffice.add_rule(Rule(status=500, times=2))
    sink = http_sink(backoffice.url)
    worker = DeliveryWorker(store, {"erp": sink}, {"erp": FAST_RETRY}, batch=4)
    try:
        await drain(worker, store)
    finally:
        await worker.close()

    final = states(store)
    assert final.pop("SGREFUSED0") == "dead"
    assert set(final.values()) == {"delivered"}
    # exactly once per idempotency key at the back office
    keys = {v.idempotency_key for v in store.deliveries(state="delivered", limit=1000)}
    assert set(backoffice.state.postings) == keys
    assert len(backoffice.state.postings) == 12
    # the refusal is kept with the back office's answer, not retried
    (dead,) = store.deliveries(state="dead")
    assert dead.attempts == 1
    assert dead.last_status == 400
    assert "400" in (dead.last_error or "")
    with store.read() as conn:
        response = conn.execute(
            select(deliveries.c.response).where(deliveries.c.id == dead.id)
        ).scalar_one()
        retried = (
            conn.execute(select(attempts.c.status_code).where(attempts.c.outcome == "retry"))
            .scalars()
            .all()
        )
    assert response == '{"error":"unknown invoice"}'
    assert sorted(retried) == [500, 500, 503, 503, 503, 503, 503]


async def test_retry_after_is_honoured(store: Store, backoffice: BackOffice) -> None:
    record(store, "SGTHROTTLE")
    backoffice.add_rule(Rule(status=429, times=1, retry_after="2"))
    worker = DeliveryWorker(store, {"erp": http_sink(backoffice.url)}, {"erp": FAST_RETRY})
    try:
        assert await worker.run_once() == 1
        (view,) = store.deliveries()
        assert view.state == "pending"
        assert view.last_status == 429
        with store.read() as conn:
            (first,) = conn.execute(select(attempts)).mappings().all()
        wait = (view.next_attempt_at - first["finished_at"]).total_seconds()
        # Retry-After: 2 (due 2 s after the answer, less the microseconds between working
        # out the due time and stamping the attempt), not the 0.05 s backoff
        assert abs(wait - 2.0) < 0.1, wait
        assert await worker.run_once() == 0  # not due yet
        await asyncio.sleep(2.1)
        assert await worker.run_once() == 1
    finally:
        await worker.close()
    assert states(store) == {"SGTHROTTLE": "delivered"}
    assert len(backoffice.state.postings) == 1


async def test_read_timeout_is_retried_with_the_same_key(
    store: Store, backoffice: BackOffice
) -> None:
    """A timed-out request may have been posted: the retry carries the same key."""
    record(store, "SGSLOWPOST")
    backoffice.add_rule(Rule(status=200, times=1, delay=1.5))
    worker = DeliveryWorker(
        store, {"erp": http_sink(backoffice.url, read_timeout=0.3)}, {"erp": FAST_RETRY}
    )
    try:
        await drain(worker, store)
        await asyncio.sleep(1.5)  # let the slow first request finish on the server
    finally:
        await worker.close()
    (view,) = store.deliveries()
    assert view.state == "delivered"
    assert view.attempts == 2
    assert len(backoffice.state.postings) == 1
    assert backoffice.state.replays == 1  # the slow original arrived second: absorbed


async def test_unreachable_back_office_dead_letters_after_the_attempt_limit(
    store: Store,
) -> None:
    record(store, "SGNOWHERE1")
    sink = http_sink("http://127.0.0.1:9/payments")  # nothing listens on the discard port
    policy = RetryPolicy(max_attempts=3, base=0.01, cap=0.02)
    worker = DeliveryWorker(store, {"erp": sink}, {"erp": policy})
    try:
        await drain(worker, store)
    finally:
        await worker.close()
    (view,) = store.deliveries()
    assert view.state == "dead"
    assert view.attempts == 3
    assert (view.last_error or "").startswith("gave up after 3 attempts: connection failed")


async def test_replay_after_fixing_the_cause(store: Store, backoffice: BackOffice) -> None:
    record(store, "SGFIXLATER", reference="REFUSE")
    backoffice.add_rule(Rule(status=422, times=1, match=lambda b: b["reference"] == "REFUSE"))
    worker = DeliveryWorker(
        store, {"erp": http_sink(backoffice.url)}, {"erp": FAST_RETRY}, lease=timedelta(seconds=30)
    )
    try:
        await drain(worker, store)
        assert states(store) == {"SGFIXLATER": "dead"}
        assert store.replay(dead=True) == 1
        await drain(worker, store)
    finally:
        await worker.close()
    assert states(store) == {"SGFIXLATER": "delivered"}
    assert len(backoffice.state.postings) == 1


async def test_a_stopping_worker_hands_back_what_it_had_not_sent(
    store: Store, backoffice: BackOffice
) -> None:
    record(store, *(f"SGSTOP{i:04d}" for i in range(12)))
    backoffice.add_rule(Rule(status=200, times=100, delay=0.3))
    worker = DeliveryWorker(
        store, {"erp": http_sink(backoffice.url)}, {"erp": FAST_RETRY}, batch=2, poll_interval=0.05
    )
    await run_until(worker, lambda: len(backoffice.state.postings) >= 2, tries=100)
    views = store.deliveries(limit=100)
    delivered = [v for v in views if v.state == "delivered"]
    # What was sent is recorded; what was only queued is pending again, its claim not
    # counted as an attempt; nothing is left leased to a worker that has gone.
    assert len(delivered) == len(backoffice.state.postings) >= 2
    assert {v.state for v in views} == {"delivered", "pending"}
    assert all(v.attempts == 0 for v in views if v.state == "pending")
    assert all(v.attempts == 1 for v in delivered)


async def test_a_delivery_whose_lease_would_lapse_before_its_turn_is_not_sent(
    store: Store, backoffice: BackOffice
) -> None:
    """One sender, two deliveries claimed together, each request slower than three
    quarters of the lease: the second would be sent under a lease about to lapse (another
    worker could claim it meanwhile), so it is handed back and claimed afresh instead."""
    record(store, "SGLEASE001", "SGLEASE002")
    backoffice.add_rule(Rule(status=200, times=100, delay=2.5))
    worker = DeliveryWorker(
        store,
        {"erp": http_sink(backoffice.url)},
        {"erp": FAST_RETRY},
        batch=1,
        lease=timedelta(seconds=3),
        poll_interval=0.05,
    )
    await run_until(worker, lambda: set(states(store).values()) == {"delivered"}, tries=200)
    assert states(store) == {"SGLEASE001": "delivered", "SGLEASE002": "delivered"}
    assert len(backoffice.state.postings) == 2
    assert backoffice.state.replays == 0
    with store.read() as conn:
        numbers = conn.execute(select(attempts.c.number)).scalars().all()
    assert sorted(numbers) == [1, 1]  # the hand-back was not an attempt
    assert [v.attempts for v in store.deliveries()] == [1, 1]


def test_backoff_doubles_is_jittered_over_its_upper_half_and_is_capped() -> None:
    policy = RetryPolicy(max_attempts=20, base=2.0, cap=60.0)
    # attempt -> the delay's ceiling: base doubled per attempt, then the cap
    for attempt, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (5, 32.0), (6, 60.0), (9, 60.0)]:
        draws = [policy.delay(attempt) for _ in range(200)]
        assert min(draws) >= ceiling / 2, (attempt, min(draws))
        assert max(draws) <= ceiling, (attempt, max(draws))
        # Jittered, not a fixed delay: 200 draws cover well over half of the interval
        # (a spread this small by chance has probability below 2**-190).
        assert max(draws) - min(draws) > ceiling / 4, (attempt, draws[:5])
    assert policy.delay(1, retry_after=7.0) == 7.0
    assert policy.delay(1, retry_after=7200.0) == 7200.0  # the server knows best
    assert policy.delay(1, retry_after=10**9) == 86_400.0


class _PickySink(HttpSink):
    """The HTTP sink with an encoder that cannot encode one reference, and, when told, a
    batch preparation that fails outright (the worker must then deliver regardless)."""

    prepare_fails = False

    def encode(self, claimed: Claimed, key: str | None = None) -> bytes:
        if claimed.transaction.reference == "UNENCODABLE":
            raise ValueError("no field for this reference")
        return super().encode(claimed, key)

    def prepare(self, batch: Sequence[Claimed]) -> list[PreparedRequest | None]:
        if self.prepare_fails:
            raise RuntimeError("preparing broke")
        return super().prepare(batch)


async def run_until(worker: DeliveryWorker, done: Callable[[], bool], *, tries: int) -> None:
    """Run the worker until ``done()`` (checked every 50 ms, at most ``tries`` times), stop it."""
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop))
    try:
        for _ in range(tries):
            if done():
                break
            await asyncio.sleep(0.05)
        stop.set()
        await task
    finally:
        await worker.close()


async def run_until_settled(worker: DeliveryWorker, store: Store) -> None:
    def settled() -> bool:
        states = store.status()["deliveries"].get("erp", {})
        return not states.get("pending") and not states.get("in_flight")

    await run_until(worker, settled, tries=200)


@pytest.mark.parametrize("prepare_fails", [False, True])
async def test_prepared_batches_deliver_once_and_an_unencodable_one_is_dead_lettered(
    store: Store, backoffice: BackOffice, prepare_fails: bool
) -> None:
    """The worker prepares each claimed batch's requests before sending (the HTTP sink
    encodes them then); a transaction that cannot be encoded is dead-lettered with the
    encoder's reason, and a preparation that breaks only means each delivery builds its
    own request: every other transaction lands exactly once either way."""
    record(store, *(f"SPREP{i:05d}" for i in range(20)))
    record(store, "SPREPBAD01", reference="UNENCODABLE")
    config = http_sink(backoffice.url).config
    sink = _PickySink(config)
    sink.prepare_fails = prepare_fails
    worker = DeliveryWorker(store, {"erp": sink}, {"erp": FAST_RETRY}, poll_interval=0.05)
    await run_until_settled(worker, store)
    views = {v.transaction.receipt: v for v in store.deliveries(limit=100)}
    assert views["SPREPBAD01"].state == "dead"
    assert "cannot encode: no field for this reference" in (views["SPREPBAD01"].last_error or "")
    assert {r: v.state for r, v in views.items() if r != "SPREPBAD01"} == {
        f"SPREP{i:05d}": "delivered" for i in range(20)
    }
    assert len(backoffice.state.postings) == 20
    assert backoffice.state.replays == 0
