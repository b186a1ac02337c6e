"""Delivery workers: claim due outbox rows, hand them to their sink, record the outcome.

At-least-once: a worker that dies loses its lease and the row is claimed again; every
sink sends the delivery's idempotency key, so the back office sees it effectively once.
"""

from __future__ import annotations

import asyncio
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
RECORD_WAIT = 0.005
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

        A pipeline: up to ``batch`` deliveries are in flight at once (each sink applies
        its own concurrency and rate limits), more are claimed as they finish, and the
        outcomes are written to the ledger together, one transaction for whatever has
        finished meanwhile (a group commit). A crash before that commit loses only the
        records: the leases lapse and the deliveries are sent again under the same keys.
        """
        log.info("worker started", worker=self.worker_id, sinks=sorted(self.sinks))
        done: asyncio.Queue[Finished] = asyncio.Queue()
        in_flight: set[asyncio.Task[None]] = set()
        recorder = asyncio.create_task(self._recorder(done))
        wake = asyncio.Event()

        async def one(claimed: Claimed) -> None:
            try:
                done.put_nowait(await self._attempt(claimed))
            finally:
                wake.set()

        try:
            while not stop.is_set():
                room = self.batch - len(in_flight)
                count = 0
                if room >= max(1, self.batch // 4):
                    try:
                        claimed = await self._claim(room)
                    except Exception:
                        log.exception("claiming deliveries failed; trying again shortly")
                        claimed = []
                    count = len(claimed)
                    for c in claimed:
                        task = asyncio.create_task(one(c))
                        in_flight.add(task)
                        task.add_done_callback(in_flight.discard)
                wake.clear()
                if count < room:
                    # Nothing more due: wait for the poll interval (or a stop).
                    await wait_or_stop(stop, self.poll_interval)
                else:
                    # Full: wait until some delivery finishes.
                    waiter = asyncio.create_task(wake.wait())
                    stopper = asyncio.create_task(stop.wait())
                    await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                    waiter.cancel()
                    stopper.cancel()
            if in_flight:
                await asyncio.gather(*in_flight, return_exceptions=True)
        finally:
            done.put_nowait(None)
            await recorder
        log.info("worker stopped", worker=self.worker_id)

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
        for (claimed, record, next_at), lease_kept in zip(finished, kept, strict=True):
            # Every attempt is in the ledger (``pesabridge deliveries show``); the log
            # carries failures at info and successes at debug, not a line per posting.
            emit = log.debug if record.outcome == "delivered" and lease_kept else log.info
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
        DELIVERIES.labels(claimed.sink, outcome).inc()
        DELIVERY_SECONDS.labels(claimed.sink).observe((finished - started).total_seconds())
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

    async def close(self) -> None:
        for sink in self.sinks.values():
            await sink.close()
