"""A small, real ISO 8583 host (a TCP server) for tests, the demo and integrators.

It answers requests (0200), advices (0220) and their repeats (0221), reversals (0420,
0421) and network management messages (0800 sign-on, echo) over a length-prefixed TCP
stream, with the framing and TPDU a real switch would want, and can be told to approve,
decline, answer 94 (duplicate), answer slowly or never, or drop the connection — for
every message or the next few of some message types, and on command while it runs.

It keeps a ledger as a host would: an approved request or advice is *posted* under
(STAN, RRN); a repeat of the same (STAN, RRN) is recognised and not posted again; a
reversal reverses the posting it names (field 90/56, or the RRN alone), and a reversal
that arrives before its original is remembered so the late original is not posted.
:meth:`HostState.net` is postings minus reversals per RRN: the proof that a transaction
reached the books exactly once. Messages are handled concurrently, so a slow answer does
not hold up the others (answers may come back out of order, as from a real switch).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import iso8583

from ..encoders.iso8583 import DEFAULT_SPEC, Iso8583Spec, load_spec
from ..sinks.iso8583.framing import Framing, FramingError, swap_tpdu
from ..sinks.iso8583.messages import response_mti as response_mti_of

Mode = Literal["approve", "decline", "duplicate", "slow", "silent", "drop"]
MODES: tuple[str, ...] = ("approve", "decline", "duplicate", "slow", "silent", "drop")
DUPLICATE = "94"
NOT_FOUND = "25"
_ECHOED = ("3", "4", "7", "11", "12", "13", "24", "32", "37", "41", "42", "49", "70")


@dataclass
class HostRule:
    """How to treat the next ``times`` messages (of types ``mtis``, or every financial,
    advice and reversal message when None)."""

    mode: Mode = "approve"
    times: int = 1
    delay: float = 0.0
    """Seconds before answering (``slow``: 5 when not given)."""
    code: str = "05"
    """Response code when declining."""
    mtis: tuple[str, ...] | None = None
    post: bool = True
    """For slow, silent and drop: whether the message is applied before the host goes
    quiet (the answer is lost), or lost itself."""


@dataclass
class Posting:
    stan: str
    rrn: str
    mti: str
    amount: str
    reversed: bool = False


@dataclass
class HostState:
    """What the host has seen and booked."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    """Every message decoded, in arrival order."""
    postings: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    """(class, STAN, RRN) -> how many times it arrived; class is financial or reversal."""
    ledger: dict[tuple[str, str], Posting] = field(default_factory=dict)
    """(STAN, RRN) -> what was booked."""
    reversed_keys: set[tuple[str, str]] = field(default_factory=set)
    connections: int = 0
    max_in_flight: int = 0
    """The most messages one connection had waiting for their answers at once."""
    tpdus: Counter[bytes] = field(default_factory=Counter)
    """TPDUs the messages came with (empty bytes: none)."""

    @property
    def duplicates(self) -> int:
        """Messages that arrived again with the same class, STAN and RRN (repeats)."""
        return sum(count - 1 for count in self.postings.values() if count > 1)

    def net(self) -> dict[str, int]:
        """Postings minus reversals per RRN (RRN without its padding)."""
        totals: Counter[str] = Counter()
        for posting in self.ledger.values():
            totals[posting.rrn.strip()] += 0 if posting.reversed else 1
        return dict(totals)

    @property
    def double_postings(self) -> dict[str, int]:
        """RRNs booked more than once net: the bug this host exists to catch."""
        return {rrn: n for rrn, n in self.net().items() if n > 1}

    def trail(self, rrn: str) -> list[tuple[str, str]]:
        """(MTI, STAN) of every message about ``rrn``, in arrival order."""
        return [
            (str(m["t"]), str(m.get("11", "")))
            for m in self.messages
            if str(m.get("37", "")).strip() == rrn
        ]

    def summary(self) -> dict[str, Any]:
        net = self.net()
        return {
            "messages": len(self.messages),
            "posted": sum(1 for n in net.values() if n == 1),
            "double_postings": self.double_postings,
            "repeats": self.duplicates,
            "connections": self.connections,
        }


def response_mti(mti: str) -> str:
    """0200 → 0210, 0220/0221 → 0230, 0420/0421 → 0430, 0800 → 0810, 1804 → 1814."""
    return response_mti_of(mti)


def parse_rule(words: list[str]) -> HostRule:
    """A rule from the control words ``MODE [CODE|DELAY] [times=N] [mtis=0200,0420]``."""
    if not words or words[0] not in MODES:
        raise ValueError(f"a rule starts with one of {', '.join(MODES)}")
    rule = HostRule(mode=words[0], times=10**12)  # type: ignore[arg-type]
    for word in words[1:]:
        key, _, value = word.partition("=")
        if not value and rule.mode == "decline":
            rule.code = key
        elif not value:
            rule.delay = float(key)
        elif key == "times":
            rule.times = int(value)
        elif key == "mtis":
            rule.mtis = tuple(value.split(","))
        elif key == "post":
            rule.post = value.lower() in ("1", "yes", "true")
        else:
            raise ValueError(f"unknown rule option {key!r}")
    return rule


class Iso8583Host:
    """The host. ``await start()`` in a running loop, or use :class:`Iso8583HostThread`."""

    def __init__(
        self,
        spec: Iso8583Spec | str = DEFAULT_SPEC,
        host: str = "127.0.0.1",
        port: int = 0,
        framing: Framing | None = None,
        rrn_duplicates: bool = False,
    ) -> None:
        self.spec = load_spec(spec) if isinstance(spec, str) else spec
        self.host = host
        self.port = port
        self.framing = framing or Framing()
        self.rrn_duplicates = rrn_duplicates
        """Answer 94 to a request or advice whose RRN is already booked (new STAN or
        not), as hosts that deduplicate on the RRN do."""
        self.state = HostState()
        self.rules: list[HostRule] = []
        self._server: asyncio.Server | None = None
        self._lock = threading.Lock()
        self._tasks: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    def add_rule(self, rule: HostRule) -> None:
        with self._lock:
            self.rules.append(rule)

    def clear_rules(self) -> None:
        with self._lock:
            self.rules.clear()

    def _next_rule(self, mti: str) -> HostRule:
        with self._lock:
            for rule in self.rules:
                if rule.times > 0 and (
                    mti in rule.mtis if rule.mtis is not None else mti[1] != "8"
                ):
                    rule.times -= 1
                    return rule
        return HostRule(times=0)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()  # a host going down takes its connections with it
            for task in list(self._tasks):
                task.cancel()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.state.connections += 1
        self._writers.add(writer)
        delayed: set[asyncio.Task[None]] = set()
        batch: list[bytes] = []
        try:
            while True:
                tpdu, body = await self.framing.read(reader)
                self.state.tpdus[tpdu] += 1
                self.state.max_in_flight = max(self.state.max_in_flight, len(delayed) + 1)
                answer, delay = self._decide(body)
                if not delay:
                    # Answered in turn, without a task per message, and the answers to
                    # what arrived together sent together: the host must not be the
                    # bottleneck of the benchmark it serves.
                    self._reply(answer, tpdu, writer, batch)
                    if writer.transport.get_write_buffer_size() > 65536:
                        await writer.drain()
                    continue
                task = asyncio.create_task(self._later(answer, delay, tpdu, writer))
                for group in (self._tasks, delayed):
                    group.add(task)
                    task.add_done_callback(group.discard)
        except (asyncio.IncompleteReadError, ConnectionError, FramingError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()
            # stop() or the loop's end may cancel this wait: the connection is closed.
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _later(
        self, answer: bytes | None, delay: float, tpdu: bytes, writer: asyncio.StreamWriter
    ) -> None:
        await asyncio.sleep(delay)
        self._reply(answer, tpdu, writer)

    def _reply(
        self,
        answer: bytes | None,
        tpdu: bytes,
        writer: asyncio.StreamWriter,
        batch: list[bytes] | None = None,
    ) -> None:
        if answer is None or writer.is_closing():
            return
        if answer == b"":
            if batch:
                self._flush(writer, batch)
            writer.close()  # drop the connection, and whatever else was in flight on it
            return
        frame = self.framing.frame(answer, swap_tpdu(tpdu))
        if batch is None:
            writer.write(frame)
            return
        batch.append(frame)
        if len(batch) == 1:  # sent once this turn of the loop has read what is there
            asyncio.get_running_loop().call_soon(self._flush, writer, batch)

    @staticmethod
    def _flush(writer: asyncio.StreamWriter, batch: list[bytes]) -> None:
        if batch and not writer.is_closing():
            writer.write(b"".join(batch))
        batch.clear()

    def _decide(self, body: bytes) -> tuple[bytes | None, float]:
        """The response bytes (None to stay silent, b"" to drop the connection) and how
        many seconds to wait before."""
        try:
            fields, _ = iso8583.decode(body, self.spec.fields)
        except iso8583.DecodeError:
            return b"", 0.0  # a host hangs up on what it cannot read
        mti = str(fields["t"])
        answer_mti = response_mti(mti)
        with self._lock:
            self.state.messages.append(fields)
        rule = self._next_rule(mti)
        if mti[1] == "8" and rule.times == 0 and rule.mode == "approve":
            return self._encode(fields, answer_mti, self.spec.approved), 0.0
        kind = "reversal" if mti[1] == "4" else "financial"
        with self._lock:
            if mti[1] != "8":
                self.state.postings[(kind, fields.get("11", ""), fields.get("37", ""))] += 1
        delay = rule.delay or (5.0 if rule.mode == "slow" else 0.0)
        if rule.mode == "decline":
            return self._encode(fields, answer_mti, rule.code), delay
        if rule.mode == "duplicate":
            return self._encode(fields, answer_mti, DUPLICATE), delay
        code = self.spec.approved
        if rule.post and mti[1] != "8":
            code = self._book(fields, mti)
        if rule.mode == "silent":
            return None, 0.0
        if rule.mode == "drop":
            return b"", delay
        return self._encode(fields, answer_mti, code), delay

    def _book(self, fields: dict[str, Any], mti: str) -> str:
        """Apply a financial message or reversal to the ledger; the response code."""
        stan, rrn = str(fields.get("11", "")), str(fields.get("37", ""))
        approved = self.spec.approved
        duplicate = DUPLICATE.rjust(len(approved), "0")
        with self._lock:
            ledger = self.state.ledger
            if mti[1] == "4":
                original = str(fields.get(self.spec.original_data_field, ""))
                key = (original[4:10], rrn)
                if key not in ledger:  # no STAN quoted, or not ours: by RRN alone
                    live = [k for k, p in ledger.items() if p.rrn == rrn and not p.reversed]
                    if len(live) == 1:
                        key = live[0]
                self.state.reversed_keys.add(key)
                posting = ledger.get(key)
                if posting is None:
                    return NOT_FOUND.rjust(len(approved), "0")
                posting.reversed = True
                return approved
            key = (stan, rrn)
            if key in ledger:  # a repeat: an advice is acknowledged, a request is a duplicate
                return approved if mti[2] == "2" else duplicate
            if key in self.state.reversed_keys:
                return approved  # reversed before it arrived: acknowledged, never booked
            if self.rrn_duplicates and any(
                p.rrn == rrn and not p.reversed for p in ledger.values()
            ):
                return duplicate
            ledger[key] = Posting(stan, rrn, mti, str(fields.get("4", "")))
            return approved

    def _encode(self, request: dict[str, Any], mti: str, code: str) -> bytes:
        echoed = {"t": mti, "39": code.rjust(len(self.spec.approved), "0")}
        for key in _ECHOED:
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
