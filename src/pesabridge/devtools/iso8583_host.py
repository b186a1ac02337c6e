"""A small, real ISO 8583 host (a TCP server) for tests, the demo and integrators.

It answers requests, advices, reversals, their repeats and network management messages
over a length-prefixed TCP stream, and can be told to approve, decline, answer slowly,
never answer, or drop the connection. It counts each financial message by (MTI class,
STAN, RRN), so a test can check that a posting reached the host effectively once.

Framing: a 2-byte big-endian binary length that does not count itself (the common
default); the message body as the spec encodes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import iso8583

from ..encoders.iso8583 import DEFAULT_SPEC, Iso8583Spec, load_spec

Mode = Literal["approve", "decline", "slow", "silent", "drop"]


@dataclass
class HostRule:
    """How to treat the next ``times`` financial messages."""

    mode: Mode = "approve"
    times: int = 1
    delay: float = 0.0
    code: str = "05"
    """Response code when declining."""


@dataclass
class HostState:
    """What the host has seen."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    postings: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(class, STAN, RRN) -> how many times it arrived; class is financial or reversal."""

    @property
    def duplicates(self) -> int:
        return sum(count - 1 for count in self.postings.values() if count > 1)


def response_mti(mti: str) -> str:
    """0200 → 0210, 0220/0221 → 0230, 0420/0421 → 0430, 0800 → 0810 (and 1xxx alike)."""
    return mti[:2] + str(int(mti[2]) + 1) + "0"


class Iso8583Host:
    """The host. ``await start()`` in a running loop, or use :class:`Iso8583HostThread`."""

    def __init__(
        self, spec: Iso8583Spec | str = DEFAULT_SPEC, host: str = "127.0.0.1", port: int = 0
    ) -> None:
        self.spec = load_spec(spec) if isinstance(spec, str) else spec
        self.host = host
        self.port = port
        self.state = HostState()
        self.rules: list[HostRule] = []
        self._server: asyncio.Server | None = None
        self._lock = threading.Lock()

    def add_rule(self, rule: HostRule) -> None:
        with self._lock:
            self.rules.append(rule)

    def _next_rule(self) -> HostRule:
        with self._lock:
            for rule in self.rules:
                if rule.times > 0:
                    rule.times -= 1
                    return rule
        return HostRule(times=0)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                header = await reader.readexactly(2)
                body = await reader.readexactly(struct.unpack(">H", header)[0])
                answer = await self._answer(body)
                if answer is None:
                    continue
                if answer == b"":
                    return  # drop the connection
                writer.write(struct.pack(">H", len(answer)) + answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, body: bytes) -> bytes | None:
        """The response bytes, None to stay silent, b"" to drop the connection."""
        try:
            fields, _ = iso8583.decode(body, self.spec.fields)
        except iso8583.DecodeError:
            return b""  # a host hangs up on what it cannot read
        mti = str(fields["t"])
        with self._lock:
            self.state.messages.append(fields)
        approved = self.spec.approved
        if mti[1] == "8":  # network management: sign-on, echo
            return self._encode(fields, response_mti(mti), approved)
        kind = "reversal" if mti[1] == "4" else "financial"
        with self._lock:
            self.state.postings[(kind, fields.get("11", ""), fields.get("37", ""))] += 1
        rule = self._next_rule()
        if rule.delay or rule.mode == "slow":
            await asyncio.sleep(rule.delay or 5.0)
        if rule.mode == "silent":
            return None
        if rule.mode == "drop":
            return b""
        code = rule.code if rule.mode == "decline" else approved
        return self._encode(fields, response_mti(mti), code)

    def _encode(self, request: dict[str, Any], mti: str, code: str) -> bytes:
        echoed = {"t": mti, "39": code.rjust(len(self.spec.approved), "0")}
        for key in ("3", "4", "7", "11", "12", "13", "37", "41", "42", "49"):
            if key in request:
                echoed[key] = request[key]
        raw, _ = iso8583.encode(echoed, self.spec.fields)
        return bytes(raw)


class Iso8583HostThread:
    """An :class:`Iso8583Host` in its own thread and event loop, for synchronous code."""

    def __init__(self, **kwargs: Any) -> None:
        self.host = Iso8583Host(**kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> Iso8583Host:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.host.start(), self._loop).result(10)
        return self.host

    def __exit__(self, *_exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.host.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
