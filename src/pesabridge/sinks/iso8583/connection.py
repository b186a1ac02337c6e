"""One TCP connection to an ISO 8583 host, with several requests in flight on it.

Writes go out as they come; one reader task takes every frame off the socket and hands
it to the request waiting for it, matched on (response class, STAN, RRN) — hosts answer
out of order. An answer nobody waits for any more (it came after the timeout) is logged
and dropped. When the connection closes, every request still in flight fails with
:class:`ConnectionLost`: it was written, so whether the host acted on it is unknown.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import iso8583
import structlog

from ...encoders.iso8583 import Iso8583Spec
from .framing import Framing, FramingError
from .messages import request_key, response_key

log = structlog.get_logger("pesabridge.sinks.iso8583")


DRAIN_ABOVE = 65536
"""Bytes waiting in the socket's buffer above which a writer waits for it to empty."""


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class Unanswered(Exception):
    """The message was written and no answer came: the host may have acted on it."""


class ResponseTimeout(Unanswered):
    """No answer within the timeout."""


class ConnectionLost(Unanswered):
    """The connection closed while the message was in flight."""


class NotSent(Exception):
    """The message never left: no connection, or it closed before the write."""


class Iso8583Connection:
    """A connection; ``exchange`` sends one message and waits for its answer."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        framing: Framing,
        spec: Iso8583Spec,
        name: str = "",
    ) -> None:
        self.framing = framing
        self.spec = spec
        self.name = name
        self._reader = reader
        self._writer = writer
        self._pending: dict[tuple[str, str, str], asyncio.Future[dict[str, Any]]] = {}
        self.closed = asyncio.Event()
        self.last_received = time.monotonic()
        self.late = 0
        self._outgoing: list[bytes] = []
        """Answers that arrived after their request had given up waiting."""
        self._task = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls, host: str, port: int, framing: Framing, spec: Iso8583Spec, timeout: float
    ) -> Iso8583Connection:
        """Connect (raises OSError or TimeoutError; nothing was sent)."""
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        return cls(reader, writer, framing, spec, f"{host}:{port}")

    def _queue(self, frame: bytes) -> None:
        """Write ``frame`` with whatever else is written in this turn of the event loop:
        one send for many messages (a send to another process costs more than encoding
        a message here)."""
        self._outgoing.append(frame)
        if len(self._outgoing) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        frames, self._outgoing = self._outgoing, []
        if not self._writer.is_closing():
            self._writer.write(b"".join(frames))

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    async def exchange(self, fields: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send ``fields`` (pyiso8583 form) and return the decoded answer.

        Raises :class:`NotSent` when the connection is already closed,
        :class:`ResponseTimeout` or :class:`ConnectionLost` once it was written.
        """
        if self.closed.is_set():
            raise NotSent(f"connection to {self.name} is closed")
        key = request_key(fields)
        if key in self._pending:
            raise ValueError(f"a message with key {key} is already in flight")
        raw, _ = iso8583.encode(dict(fields), self.spec.fields)
        frame = self.framing.frame(bytes(raw))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        self._pending[key] = future
        # One timer on the future rather than wait_for (a task and a shield per message).
        timer = loop.call_later(timeout, _expire, future)
        try:
            self._queue(frame)
            if self._writer.transport.get_write_buffer_size() > DRAIN_ABOVE:
                await self._writer.drain()
            return await future
        except TimeoutError:
            raise ResponseTimeout(
                f"no answer from {self.name} within {timeout:g}s to {fields['t']} "
                f"STAN {fields.get('11')}"
            ) from None
        except ConnectionError as exc:
            self.close()
            raise ConnectionLost(f"connection to {self.name} lost: {exc}") from None
        finally:
            timer.cancel()
            self._pending.pop(key, None)

    async def _read(self) -> None:
        reason = "closed by the host"
        try:
            while True:
                _tpdu, body = await self.framing.read(self._reader)
                self.last_received = time.monotonic()
                try:
                    fields, _ = iso8583.decode(body, self.spec.fields)
                except iso8583.DecodeError as exc:
                    # One bad answer cannot be matched to anything; the stream itself is
                    # still in step (the length said where it ends).
                    log.warning("undecodable answer from the host", host=self.name, error=str(exc))
                    continue
                future = self._pending.get(response_key(fields))
                if future is None or future.done():
                    self.late += 1
                    log.info(
                        "answer nobody waits for (late, or not ours)",
                        host=self.name,
                        mti=fields.get("t"),
                        stan=fields.get("11"),
                        code=fields.get("39"),
                    )
                    continue
                future.set_result(fields)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            reason = f"closed by the host ({type(exc).__name__})"
        except FramingError as exc:
            reason = f"framing error: {exc}"
            log.warning("framing error; closing the connection", host=self.name, error=str(exc))
        except asyncio.CancelledError:
            reason = "closed"
        finally:
            self._fail_all(reason)
            self._writer.close()
            self.closed.set()

    def _fail_all(self, reason: str) -> None:
        for key, future in list(self._pending.items()):
            if not future.done():
                future.set_exception(
                    ConnectionLost(
                        f"connection to {self.name} {reason} with STAN {key[1]} in flight"
                    )
                )

    def close(self) -> None:
        """Close now; requests in flight fail with :class:`ConnectionLost`."""
        if not self._task.done():
            self._task.cancel()
        self._writer.close()

    async def aclose(self) -> None:
        self.close()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(ConnectionError, OSError):
            await self._writer.wait_closed()
