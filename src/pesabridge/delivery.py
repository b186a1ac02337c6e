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
from typing import Any, TypeVar

import structlog

from .aio import wait_or_stop
from .errors import DeliveryError
from .metrics import DELIVERIES, DELIVERY_SECONDS
from .sinks import Delivered, Sink
from .store import AttemptRecord, Claimed, Store, utcnow

log = structlog.get_logger("pesabridge.delivery")
T = TypeVar("T")

MAX_RETRY_AFTER = 86_400.0
RECORD_WAIT = 0.02
"""Seconds the recorder waits after an outcome for more to commit with it."""

Finished = tuple[Claimed, AttemptRecord, datetime | None] | None
"""A delivery's attempt and its next due time, queued for the ledger; None ends the queue."""


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
            finished = await asyncio.gather(*(self._attempt(c) for c in claimed))
            await self._record(list(finished))
        return len(claimed)

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
        done: asyncio.Queue[Finished] = asyncio.Queue()
        ready: asyncio.Queue[tuple[Claimed, float] | None] = asyncio.Queue()
        drained = asyncio.Event()
        low = max(1, self.batch // 2)
        margin = self.lease.total_seconds() / 4
        released: list[Claimed] = []

        async def sender() -> None:
            loop = asyncio.get_running_loop()
            while (item := await ready.get()) is not None:
                if ready.qsize() < low:
                    drained.set()
                claimed, expires = item
                if loop.time() > expires - margin:
                    released.append(claimed)
                    continue
                try:
                    done.put_nowait(await self._attempt(claimed))
                except Exception:
                    # Not the sink (``_attempt`` records its failures): keep this sender;
                    # the delivery's lease lapses and it is tried again.
                    log.exception("delivery attempt failed", delivery=claimed.delivery_id)

        recorder = asyncio.create_task(self._recorder(done))
        senders = [asyncio.create_task(sender()) for _ in range(self._sender_count())]
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
                for c in claimed:
                    ready.put_nowait((c, expires))
                drained.clear()
                if len(claimed) < room:
                    # Nothing more due: wait for the poll interval (or a stop).
                    await wait_or_stop(stop, self.poll_interval)
                elif ready.qsize() >= low:
                    # Plenty queued: wait until the senders have taken half of it.
                    waiter = asyncio.create_task(drained.wait())
                    stopper = asyncio.create_task(stop.wait())
                    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    stopper.cancel()
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
            for task in senders:
                task.cancel()
            done.put_nowait(None)
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

    async def _recorder(self, done: asyncio.Queue[Finished]) -> None:
        """Write finished attempts to the ledger, all those waiting in one transaction."""
        while True:
            first = await done.get()
            if first is not None:
                # Let the deliveries finishing about now join this commit.
                await asyncio.sleep(RECORD_WAIT)
            items = [first]
            while not done.empty():
                items.append(done.get_nowait())
            finished = [item for item in items if item is not None]
            if finished:
                try:
                    await self._record(finished)
                except Exception:
                    # The leases lapse and the deliveries are tried again.
                    log.exception("recording delivery outcomes failed", count=len(finished))
            if None in items:
                return

    async def _record(self, finished: list[tuple[Claimed, AttemptRecord, datetime | None]]) -> None:
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

    async def _attempt(self, claimed: Claimed) -> tuple[Claimed, AttemptRecord, datetime | None]:
        """Try one delivery; what to record (nothing is written here)."""
        sink = self.sinks[claimed.sink]
        policy = self.policies.get(claimed.sink, RetryPolicy())
        started = utcnow()
        next_at = None
        status: int | None = None
        response: str | None = None
        error: str | None = None
        unknown = False
        summary: str | None = None
        document_id: str | None = None
        try:
            result: Delivered = await sink.deliver(claimed)
            outcome = "delivered"
            status, response, error = result.status_code, result.response, result.note
            summary, document_id = result.request_summary, result.document_id
        except DeliveryError as exc:
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
        except Exception as exc:  # a bug in a sink must not kill the worker
            log.exception("sink raised unexpectedly", sink=claimed.sink)
            error = f"{type(exc).__name__}: {exc}"
            outcome = "retry" if claimed.attempt < policy.max_attempts else "dead"
            next_at = utcnow() + timedelta(seconds=policy.delay(claimed.attempt))
        finished = utcnow()
        self._count(claimed.sink, outcome, (finished - started).total_seconds())
        record = AttemptRecord(
            worker=self.worker_id,
            number=claimed.attempt,
            started_at=started,
            finished_at=finished,
            outcome=outcome,
            status_code=status,
            error=error,
            response=response,
            unknown_outcome=unknown,
            request_summary=summary,
            document_id=document_id,
        )
        return claimed, record, next_at

    def _count(self, sink: str, outcome: str, seconds: float) -> None:
        """The attempt in the metrics (labelled children looked up once, not per attempt)."""
        counter = self._counters.get((sink, outcome))
        if counter is None:
            counter = self._counters[(sink, outcome)] = DELIVERIES.labels(sink, outcome)
        timer = self._timers.get(sink)
        if timer is None:
            timer = self._timers[sink] = DELIVERY_SECONDS.labels(sink)
        counter.inc()
        timer.observe(seconds)

    async def close(self) -> None:
        for sink in self.sinks.values():
            await sink.close()
