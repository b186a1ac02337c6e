"""A small pool of persistent, signed-on connections to one ISO 8583 host.

Each slot keeps its connection up by itself: connect, sign on (0800, field 70 = 001),
then send an echo test (0800, 301) whenever the line has been quiet for the echo
interval; a refused sign-on, an unanswered echo or a dropped connection closes it, and
the slot reconnects after an exponential backoff with jitter (reset once a sign-on
succeeds). Callers take the ready connection with the fewest messages in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog

from ...encoders.iso8583 import Iso8583Spec
from ...store import utcnow
from .connection import Iso8583Connection, NotSent, Unanswered
from .framing import Framing
from .messages import network_message

log = structlog.get_logger("pesabridge.sinks.iso8583")

StanSource = Callable[[], Awaitable[int]]


class HostUnavailable(NotSent):
    """No signed-on connection could be had in time; nothing was sent."""


@dataclass(frozen=True, slots=True)
class PoolSettings:
    host: str
    port: int
    size: int = 1
    connect_timeout: float = 5.0
    response_timeout: float = 10.0
    sign_on: bool = True
    echo_interval: float = 60.0
    """Seconds of silence before an echo test (0: never)."""
    backoff_base: float = 0.5
    backoff_cap: float = 30.0


class Iso8583Pool:
    """``size`` connections kept up in the background once :meth:`acquire` is first called."""

    def __init__(
        self, settings: PoolSettings, framing: Framing, spec: Iso8583Spec, stan: StanSource
    ) -> None:
        self.settings = settings
        self.framing = framing
        self.spec = spec
        self._stan = stan
        self._slots: list[Iso8583Connection | None] = [None] * settings.size
        self._tasks: list[asyncio.Task[None]] = []
        self._ready = asyncio.Condition()
        self._stopping = asyncio.Event()
        self.connects = 0
        """Connections signed on since start (1 per slot without trouble)."""
        self.last_error: str | None = None

    def _start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._keep(i)) for i in range(self.settings.size)]

    async def acquire(self, timeout: float | None = None) -> Iso8583Connection:
        """A signed-on connection; :class:`HostUnavailable` if none within ``timeout``."""
        self._start()
        wait = self.settings.connect_timeout if timeout is None else timeout

        def ready() -> Iso8583Connection | None:
            live = [c for c in self._slots if c is not None and not c.closed.is_set()]
            return min(live, key=lambda c: c.in_flight) if live else None

        async with self._ready:
            try:
                connection = await asyncio.wait_for(self._ready.wait_for(ready), wait)
            except TimeoutError:
                raise HostUnavailable(
                    f"no connection to {self.settings.host}:{self.settings.port} within "
                    f"{wait:g}s" + (f" ({self.last_error})" if self.last_error else "")
                ) from None
        assert connection is not None
        return connection

    async def _network(self, connection: Iso8583Connection, kind: str) -> bool:
        fields = network_message(self.spec.version, kind, await self._stan(), utcnow())
        answer = await connection.exchange(fields, self.settings.response_timeout)
        code = str(answer.get("39", ""))
        if code != self.spec.approved:
            self.last_error = f"{kind} refused with response code {code}"
            log.warning("network management refused", kind=kind, code=code)
            return False
        return True

    async def _keep(self, slot: int) -> None:
        settings = self.settings
        delay = settings.backoff_base
        while not self._stopping.is_set():
            connection: Iso8583Connection | None = None
            try:
                connection = await Iso8583Connection.open(
                    settings.host, settings.port, self.framing, self.spec, settings.connect_timeout
                )
                if settings.sign_on and not await self._network(connection, "sign-on"):
                    raise ConnectionRefusedError("sign-on refused")
                self.connects += 1
                self.last_error = None
                delay = settings.backoff_base
                log.info("connected to the ISO 8583 host", host=connection.name, slot=slot)
                async with self._ready:
                    self._slots[slot] = connection
                    self._ready.notify_all()
                await self._echo_until_closed(connection)
                log.warning("ISO 8583 connection closed", host=connection.name, slot=slot)
            except (OSError, TimeoutError, Unanswered, NotSent) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "cannot keep a connection to the ISO 8583 host",
                    host=f"{settings.host}:{settings.port}",
                    error=self.last_error,
                    retry_in=round(delay, 2),
                )
            finally:
                self._slots[slot] = None
                if connection is not None:
                    await connection.aclose()
            if self._stopping.is_set():
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), random.uniform(delay / 2, delay))
            delay = min(settings.backoff_cap, delay * 2)

    async def _echo_until_closed(self, connection: Iso8583Connection) -> None:
        interval = self.settings.echo_interval
        while not connection.closed.is_set() and not self._stopping.is_set():
            quiet = time.monotonic() - connection.last_received
            wait = interval - quiet if interval else None
            if wait is not None and wait <= 0:
                if not await self._network(connection, "echo"):
                    return
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(connection.closed.wait(), wait)

    async def close(self) -> None:
        """Stop reconnecting and close every connection."""
        self._stopping.set()
        for connection in self._slots:
            if connection is not None:
                connection.close()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
