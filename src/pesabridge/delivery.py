"""Delivery workers: claim due outbox rows, hand them to their sink, record the outcome.

At-least-once: a worker that dies loses its lease and the row is claimed again; every
sink sends the delivery's idempotency key, so the back office sees it effectively once.
"""

from __future__ import annotations

import asyncio
import os
import random
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import structlog

from .aio import wait_or_stop
from .errors import DeliveryError
from .metrics import DELIVERIES, DELIVERY_SECONDS
from .sinks import Delivered, Sink
from .store import AttemptRecord, Claimed, Store, utcnow

log = structlog.get_logger("pesabridge.delivery")

MAX_RETRY_AFTER = 86_400.0


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

    async def run_once(self) -> int:
        """Claim one batch and deliver it; returns how many were claimed."""
        if not self.sinks:
            return 0
        claimed = await asyncio.to_thread(
            self.store.claim,
            self.worker_id,
            limit=self.batch,
            lease=self.lease,
            sinks=list(self.sinks),
        )
        if claimed:
            await asyncio.gather(*(self._deliver(c) for c in claimed))
        return len(claimed)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop`` is set; finishes the batch in hand before returning."""
        log.info("worker started", worker=self.worker_id, sinks=sorted(self.sinks))
        while not stop.is_set():
            try:
                count = await self.run_once()
            except Exception:
                log.exception("claiming deliveries failed; trying again shortly")
                count = 0
            if count < self.batch:
                await wait_or_stop(stop, self.poll_interval)
        log.info("worker stopped", worker=self.worker_id)

    async def _deliver(self, claimed: Claimed) -> None:
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
        kept = await asyncio.to_thread(self.store.finish, claimed, record, next_attempt_at=next_at)
        log.info(
            "delivery attempt",
            sink=claimed.sink,
            delivery=claimed.delivery_id,
            attempt=claimed.attempt,
            outcome=outcome,
            status=status,
            error=error,
            unknown_outcome=unknown or None,
            document_id=document_id,
            lease_kept=kept,
            transaction=claimed.transaction.describe(),
            next_attempt_at=next_at.isoformat() if next_at else None,
        )

    async def close(self) -> None:
        for sink in self.sinks.values():
            await sink.close()
