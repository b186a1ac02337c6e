"""Keeping a file poller going: poll on schedule, back off, park, and record health.

A connection failure backs off exponentially with jitter, from the poll interval (at
most 5 s) up to ``backoff_max``. A configuration error (wrong password, host key
mismatch, untrusted certificate) is logged once and parks the source, which then tries
again only every ``backoff_max`` seconds. Every outcome is noted on the source's health
record, shown by ``pesabridge status``.
"""

from __future__ import annotations

import asyncio
import random
from typing import TYPE_CHECKING

import structlog

from ..aio import wait_or_stop
from .remotefs import RemoteConfigError, RemoteUnavailable

if TYPE_CHECKING:
    from .poller import FilePoller

log = structlog.get_logger("pesabridge.sources.files")


def backoff_delay(failures: int, poll_interval: float, cap: float) -> float:
    """Seconds to wait after ``failures`` consecutive connection failures (with jitter)."""
    first = min(poll_interval, 5.0)
    base: float = min(cap, first * 2.0 ** min(max(failures - 1, 0), 30))
    return base * (0.5 + random.random() / 2)


async def poll_until_stopped(poller: FilePoller, stop: asyncio.Event) -> None:
    """Run ``poller`` until ``stop`` is set, backing off on connection errors and parking
    on configuration errors (logged once, not retried in a storm)."""
    log.info("watching for files", source=poller.name, at=poller.fs.description)
    failures = 0
    parked: str | None = None
    while not stop.is_set():
        delay = poller.config.poll_interval
        try:
            await asyncio.to_thread(poller.poll_once, should_stop=stop.is_set)
            if failures or parked:
                log.info("source recovered", source=poller.name)
            failures, parked = 0, None
        except RemoteConfigError as exc:
            message = f"configuration error: {exc}"
            if message != parked:
                log.error(
                    "source parked: fix the configuration",
                    source=poller.name,
                    error=str(exc),
                    retry_every=poller.backoff_max,
                )
                parked = message
            await asyncio.to_thread(poller.context.store.note_source, poller.name, error=message)
            delay = max(poller.backoff_max, poller.config.poll_interval)
        except Exception as exc:
            failures += 1
            delay = backoff_delay(failures, poller.config.poll_interval, poller.backoff_max)
            if isinstance(exc, RemoteUnavailable):
                log.warning(
                    "cannot reach the server",
                    source=poller.name,
                    error=str(exc),
                    failures=failures,
                    retry_in=round(delay, 1),
                )
            else:
                log.exception("poll failed", source=poller.name, retry_in=round(delay, 1))
            try:
                await asyncio.to_thread(
                    poller.context.store.note_source, poller.name, error=str(exc)
                )
            except Exception:
                log.exception("cannot record the source's state", source=poller.name)
        await wait_or_stop(stop, delay)
