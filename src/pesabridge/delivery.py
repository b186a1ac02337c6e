"""Delivery workers: claim due outbox rows, hand them to their sink, record the outcome.

At-least-once: a worker that dies loses its lease and the row is claimed again; every
sink sends the delivery's idempotency key, so the back office sees it effectively once.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar, cast

import structlog

from .aio import wait_or_stop
from .errors import DeliveryError
from .metrics import DELIVERIES, DELIVERY_SECONDS
from .sinks import Delivered, PreparingSink, Sink
from .store import AttemptRecord, Claimed, Store, utcnow

log = structlog.get_logger("pesabridge.delivery")
T = TypeVar("T")

MAX_RETRY_AFTER = 86_400.0
RECORD_WAIT = 0.02
"""Seconds the recorder waits after an outcome for more to commit with it."""

Finished = tuple[Claimed, AttemptRecord, datetime | None]
"""A delivery's attempt and its next due time, for the ledger."""


class _Outcomes:
    """Finished attempts waiting for the recorder: a list and an event, which cost an
    attempt less than a queue's put and get."""

    def __init__(self) -> None:
        self.items: list[Finished] = []
        self.waiting = asyncio.Event()
        self.closed = False

    def put(self, item: Finished) -> None:
        self.items.append(item)
        self.waiting.set()  # a no-op while it is set already

    def take(self) -> list[Finished]:
        items, self.items = self.items, []
        self.waiting.clear()
        return items

    def close(self) -> None:
        """No more will come: the recorder writes what is left and returns."""
        self.closed = True
        self.waiting.set()


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, and an attempt limit."""

    max_attempts: int = 12
    base: float = 2.0
    cap: float = 3600.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based).

        A server's ``Retry-After`` is honoured as given (bounded by a day, against a
        nonsense value); otherwise the delay doubles each attempt up to ``cap``, jittered
        over its upper half so that many failed deliveries do not all return at once.
        """
        if retry_after is not None:
            return min(max(retry_after, 0.0), MAX_RETRY_AFTER)
        ceiling = min(self.cap, self.base * 2 ** (attempt - 1))
        return random.uniform(ceiling / 2, ceiling)


def default_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class DeliveryWorker:
    """Claims and delivers outbox rows for the sinks it was given."""

    def __init__(
        self,
        store: Store,
        sinks: Mapping[str, Sink],
        policies: Mapping[str, RetryPolicy] | None = None,
        *,
        worker_id: str | None = None,
        batch: int = 32,
        lease: timedelta = timedelta(seconds=120),
        poll_interval: float = 1.0,
    ) -> None:
        self.store = store
        self.sinks = dict(sinks)
        self.policies = dict(policies or {})
        self.worker_id = worker_id or default_worker_id()
        self.batch = batch
        self.lease = lease
        self.poll_interval = poll_interval
        self._inline_db = store.dialect == "sqlite"
        self._counters: dict[tuple[str, str], Any] = {}
        self._timers: dict[str, Any] = {}

    async def _db(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a ledger call. On SQLite it runs on the event loop: a claim or a batch of
        outcomes takes about a millisecond there, less than a worker thread loses waiting
        for the GIL behind a busy loop (the interpreter hands it over every 5 ms)."""
        if self._inline_db:
            return function(*args, **kwargs)
        return await asyncio.to_thread(function, *args, **kwargs)

    async def run_once(self) -> int:
        """Claim one batch, deliver it and record the outcomes; returns how many were
        claimed."""
        claimed = await self._claim(self.batch)
        if claimed:
            prepared = self._prepare(claimed)
            finished = await asyncio.gather(
                *(self._attempt(c, p) for c, p in zip(claimed, prepared, strict=True))
            )
            await self._record(list(finished))
        return len(claimed)

    def _prepare(self, claimed: list[Claimed]) -> list[object]:
        """What the sinks that prepare a batch at once (:class:`PreparingSink`) made for
        each claimed delivery; None where a sink does not, or could not."""
        prepared: list[object] = [None] * len(claimed)
        groups: dict[str, list[int]] = {}
        for i, c in enumerate(claimed):
            groups.setdefault(c.sink, []).append(i)
        for name, positions in groups.items():
            prepare = getattr(self.sinks[name], "prepare", None)
            if prepare is None:
                continue
            try:
                items = prepare([claimed[i] for i in positions])
                for i, item in zip(positions, items, strict=True):
                    prepared[i] = item
            except Exception:
                # Each delivery then does its own preparing, and fails there if it must.
                log.exception("preparing deliveries failed", sink=name, count=len(positions))
        return prepared

    async def _claim(self, limit: int) -> list[Claimed]:
        if not self.sinks or limit <= 0:
            return []
        return await self._db(
            self.store.claim,
            self.worker_id,
            limit=limit,
            lease=self.lease,
            sinks=list(self.sinks),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; finishes the deliveries in hand before returning.

        A pipeline of three parts. ``batch`` senders each take the next claimed delivery
        and try it (each sink applies its own concurrency and rate limits). A claimer
        keeps a queue of up to ``batch`` claimed deliveries ahead of them, claiming in
        batches when it runs half empty, so a claim's fixed cost is shared by many rows.
        A recorder writes outcomes to the ledger together, one transaction for whatever
        has finished meanwhile (a group commit). A crash before that commit loses only the
        records: the leases lapse and the deliveries are sent again under the same keys.
        A delivery whose lease is about to lapse before its turn comes is released
        unsent rather than sent under a lease another worker may already hold.
        """
        log.info("worker started", worker=self.worker_id, sinks=sorted(self.sinks))
        done = _Outcomes()
        ready: asyncio.Queue[tuple[Claimed, float, object] | None] = asyncio.Queue()
        drained = asyncio.Event()
        low = max(1, self.batch // 2)
        margin = self.lease.total_seconds() / 4
        released: list[Claimed] = []

        async def sender() -> None:
            loop = asyncio.get_running_loop()
            while (item := await ready.get()) is not None:
                if ready.qsize() < low:
                    drained.set()
                claimed, expires, prepared = item
                if loop.time() > expires - margin:
                    released.append(claimed)
                    continue
                try:
                    done.put(await self._attempt(claimed, prepared))
                except Exception:
                    # Not the sink (``_attempt`` records its failures): keep this sender;
                    # the delivery's lease lapses and it is tried again.
                    log.exception("delivery attempt failed", delivery=claimed.delivery_id)

        async def wake_on_stop() -> None:
            await stop.wait()
            drained.set()

        recorder = asyncio.create_task(self._recorder(done))
        senders = [asyncio.create_task(sender()) for _ in range(self._sender_count())]
        waker = asyncio.create_task(wake_on_stop())
        try:
            loop = asyncio.get_running_loop()
            while not stop.is_set():
                if released:
                    await self._release(released)
                room = 2 * self.batch - ready.qsize()
                try:
                    claimed = await self._claim(room)
                except Exception:
                    log.exception("claiming deliveries failed; trying again shortly")
                    claimed = []
                expires = loop.time() + self.lease.total_seconds()
                if claimed:
                    for c, p in zip(claimed, self._prepare(claimed), strict=True):
                        ready.put_nowait((c, expires, p))
                drained.clear()
                if len(claimed) < room:
                    # Nothing more due: wait for the poll interval (or a stop).
                    await wait_or_stop(stop, self.poll_interval)
                elif ready.qsize() >= low and not stop.is_set():
                    # Plenty queued: wait until the senders have taken half of it (a stop
                    # wakes this too, through ``wake_on_stop``).
                    await drained.wait()
            # Stop: what is queued was never sent; hand it back at once.
            while not ready.empty():
                item = ready.get_nowait()
                if item is not None:
                    released.append(item[0])
            for _ in senders:
                ready.put_nowait(None)
            await asyncio.gather(*senders, return_exceptions=True)
            if released:
                await self._release(released)
        finally:
            waker.cancel()
            for task in senders:
                task.cancel()
            done.close()
            await recorder
        log.info("worker stopped", worker=self.worker_id)

    def _sender_count(self) -> int:
        """``batch``, or fewer when the sinks say they take fewer requests at once: a
        sender beyond that would only wait on its sink's limit."""
        limits: list[int] = []
        for sink in self.sinks.values():
            limit = getattr(sink, "concurrency", None)
            if not isinstance(limit, int):
                return self.batch
            limits.append(limit)
        return max(1, min(self.batch, sum(limits))) if limits else self.batch

    async def _release(self, released: list[Claimed]) -> None:
        """Give back claimed deliveries that were never sent."""
        batch = list(released)
        released.clear()
        try:
            await self._db(self.store.release, self.worker_id, batch)
        except Exception:
            # Their leases lapse instead; they are claimed again then.
            log.exception("releasing unsent deliveries failed", count=len(batch))

    async def _recorder(self, done: _Outcomes) -> None:
        """Write finished attempts to the ledger, all those waiting in one transaction."""
        while True:
            await done.waiting.wait()
            if not done.closed:
                # Let the deliveries finishing about now join this commit.
                await asyncio.sleep(RECORD_WAIT)
            finished = done.take()
            if finished:
                try:
                    await self._record(finished)
                except Exception:
                    # The leases lapse and the deliveries are tried again.
                    log.exception("recording delivery outcomes failed", count=len(finished))
            if done.closed and not done.items:
                return

    async def _record(self, finished: list[Finished]) -> None:
        self._count(finished)
        kept = await self._db(self.store.finish_many, finished)
        # Every attempt is in the ledger (``pesabridge deliveries show``); the log carries
        # failures at info and successes at debug, not a line per posting (and, at info,
        # costs a delivered attempt nothing, not even building the line).
        debug = log.bind().is_enabled_for(logging.DEBUG)
        for (claimed, record, next_at), lease_kept in zip(finished, kept, strict=True):
            quiet = record.outcome == "delivered" and lease_kept
            if quiet and not debug:
                continue
            emit = log.debug if quiet else log.info
            emit(
                "delivery attempt",
                sink=claimed.sink,
                delivery=claimed.delivery_id,
                attempt=claimed.attempt,
                outcome=record.outcome,
                status=record.status_code,
                error=record.error,
                unknown_outcome=record.unknown_outcome or None,
                document_id=record.document_id,
                lease_kept=lease_kept,
                transaction=claimed.transaction.describe(),
                next_attempt_at=next_at.isoformat() if next_at else None,
            )

    async def _attempt(
        self, claimed: Claimed, prepared: object = None
    ) -> tuple[Claimed, AttemptRecord, datetime | None]:
        """Try one delivery (with what its sink prepared, if anything); what to record
        (nothing is written here)."""
        sink = self.sinks[claimed.sink]
        started = utcnow()
        try:
            if prepared is None:
                result: Delivered = await sink.deliver(claimed)
            else:
                result = await cast(PreparingSink, sink).deliver(claimed, prepared)
        except Exception as exc:
            return self._failed(claimed, started, exc)
        record = AttemptRecord(
            worker=self.worker_id,
            number=claimed.attempt,
            started_at=started,
            finished_at=utcnow(),
            outcome="delivered",
            status_code=result.status_code,
            error=result.note,
            response=result.response,
            request_summary=result.request_summary,
            document_id=result.document_id,
        )
        return claimed, record, None

    def _failed(
        self, claimed: Claimed, started: datetime, exc: Exception
    ) -> tuple[Claimed, AttemptRecord, datetime | None]:
        """What to record for an attempt that raised: retry (when) or dead letter."""
        policy = self.policies.get(claimed.sink, RetryPolicy())
        next_at = None
        status: int | None = None
        response: str | None = None
        unknown = False
        summary: str | None = None
        if isinstance(exc, DeliveryError):
            status, response, error = exc.status, exc.response, str(exc)
            unknown, summary = exc.unknown_outcome, exc.request_summary
            if exc.retryable and claimed.attempt < policy.max_attempts:
                outcome = "retry"
                next_at = utcnow() + timedelta(
                    seconds=policy.delay(claimed.attempt, exc.retry_after)
                )
            else:
                outcome = "dead"
                if exc.retryable:
                    error = f"gave up after {claimed.attempt} attempts: {exc}"
        else:  # a bug in a sink must not kill the worker
            # Called from the except clause, so the traceback is still the current one.
            log.exception("sink raised unexpectedly", sink=claimed.sink)
            error = f"{type(exc).__name__}: {exc}"
            outcome = "retry" if claimed.attempt < policy.max_attempts else "dead"
            next_at = utcnow() + timedelta(seconds=policy.delay(claimed.attempt))
        record = AttemptRecord(
            worker=self.worker_id,
            number=claimed.attempt,
            started_at=started,
            finished_at=utcnow(),
            outcome=outcome,
            status_code=status,
            error=error,
            response=response,
            unknown_outcome=unknown,
            request_summary=summary,
        )
        return claimed, record, next_at

    def _count(self, finished: list[Finished]) -> None:
        """Finished attempts in the metrics, counted per batch: one increment per (sink,
        outcome) and one observation per attempt (labelled children looked up once)."""
        counts: dict[tuple[str, str], int] = {}
        timers = self._timers
        for claimed, record, _next in finished:
            key = (claimed.sink, record.outcome)
            counts[key] = counts.get(key, 0) + 1
            timer = timers.get(claimed.sink)
            if timer is None:
                timer = timers[claimed.sink] = DELIVERY_SECONDS.labels(claimed.sink)
            timer.observe((record.finished_at - record.started_at).total_seconds())
        for key, count in counts.items():
            counter = self._counters.get(key)
            if counter is None:
                counter = self._counters[key] = DELIVERIES.labels(*key)
            counter.inc(count)

    async def close(self) -> None:
        for sink in self.sinks.values():
            await sink.close()
