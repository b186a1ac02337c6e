"""ISO 8583 host sink: each transaction as one financial message, posted exactly once.

The default message is an advice (0220): the payment has already happened, the host
records it. An advice that goes unanswered is repeated as 0221 with the same STAN and RRN
until a 0230 arrives; the host recognises the repeat, so it books it once. A request
(0200, ``message.mti: request``) that goes unanswered may or may not have been posted:
it is reversed (0420, its own STAN, the same RRN, the original's MTI, STAN and time in
field 90), the reversal repeated as 0421 until a 0430 arrives, and only then is the
original sent again, with a new STAN and the same RRN. Either way the host's net effect
is one posting.

What is about to be sent is written to the journal (:mod:`pesabridge.store.exchanges`)
before it is sent, so a worker that dies mid-exchange leaves enough for the next one to
repeat the advice or reverse the request before anything else — after a restart too.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar
from zoneinfo import ZoneInfo

import structlog

from ...config import ComponentConfig
from ...encoders.base import EncodeError
from ...encoders.iso8583 import Iso8583Encoder, OriginalMessage
from ...errors import DeliveryError
from ...model import Entry, Transaction
from ...store import Claimed, Store, utcnow
from ...store import exchanges as journal
from ...store import stan as stans
from ...store.exchanges import Exchange, Phase, Version
from ..base import Delivered
from .builder import MessageBuilder
from .config import Iso8583SinkConfig
from .connection import NotSent, Unanswered
from .framing import Framing, parse_tpdu
from .messages import repeat_mti
from .pool import Iso8583Pool, PoolSettings

log = structlog.get_logger("pesabridge.sinks.iso8583")
T = TypeVar("T")


class JournalConflict(Exception):
    """Another worker changed this delivery's journal meanwhile: send nothing."""


class Iso8583Sink:
    """Posts transactions to an ISO 8583 host over persistent TCP connections."""

    Config: ClassVar[type[ComponentConfig]] = Iso8583SinkConfig

    def __init__(self, config: Iso8583SinkConfig, store: Store | None = None) -> None:
        self.config = config
        self.name = config.name
        self.encoder = Iso8583Encoder(**config.message.encoder_options())
        self.spec = self.encoder.spec
        self.zone = ZoneInfo(config.message.zone)
        self.framing = Framing(
            config.framing.length, config.framing.includes_length, parse_tpdu(config.framing.tpdu)
        )
        self.codes = config.code_table()
        self.reversal_done = config.reversal_codes()
        self.request_mti = self.spec.mti["request"]
        self.messages = MessageBuilder(self.encoder, self.name)
        self.concurrency = config.max_in_flight
        """Deliveries this sink takes at once (the worker sizes its senders by it)."""
        self.store = store
        self.pool: Iso8583Pool | None = None
        self._limit: asyncio.Semaphore | None = None

    def attach(self, store: Store) -> None:
        """Use ``store`` for STANs and the journal (the runtime calls this)."""
        self.store = store

    # -- the ledger ------------------------------------------------------------------

    def _store(self) -> Store:
        if self.store is None:
            raise RuntimeError(f"ISO 8583 sink {self.name} has no ledger (attach a store)")
        return self.store

    async def _db(self, function: Callable[..., T], *args: Any) -> T:
        # As the worker does: on SQLite a short write on the loop beats a thread hand-over.
        if self._store().dialect == "sqlite":
            return function(*args)
        return await asyncio.to_thread(function, *args)

    def _day(self) -> str:
        return utcnow().astimezone(self.zone).date().isoformat()

    def _next_stan(self) -> int:
        with self._store().write() as conn:
            return stans.allocate(conn, self.name, self._day())[0]

    def _begin(
        self, delivery_id: int, make: Callable[[int], Exchange], previous: Version | None
    ) -> tuple[Exchange, Version]:
        """Allocate a STAN and journal what will be sent with it, in one transaction."""
        with self._store().write() as conn:
            exchange = make(stans.allocate(conn, self.name, self._day())[0])
            version = journal.save(conn, delivery_id, exchange, previous)
            if version is None:
                raise JournalConflict()
        return exchange, version

    def _save(self, delivery_id: int, exchange: Exchange, previous: Version) -> Version:
        with self._store().write() as conn:
            version = journal.save(conn, delivery_id, exchange, previous)
        if version is None:
            raise JournalConflict()
        return version

    def _load(self, delivery_id: int) -> tuple[Exchange | None, Version | None]:
        with self._store().read() as conn:
            return journal.load(conn, delivery_id)

    def _original(self, txn: Transaction) -> Exchange | None:
        with self._store().read() as conn:
            return journal.original_of(
                conn, self.name, txn.provider, txn.account or "", txn.related_receipt or ""
            )

    # -- connections -----------------------------------------------------------------

    def _pool(self) -> Iso8583Pool:
        if self.pool is None:
            c = self.config
            settings = PoolSettings(
                host=c.host,
                port=c.port,
                size=c.connections,
                connect_timeout=c.connect_timeout,
                response_timeout=c.response_timeout,
                sign_on=c.sign_on,
                echo_interval=c.echo_interval,
                backoff_base=c.reconnect_base,
                backoff_cap=c.reconnect_cap,
            )
            self.pool = Iso8583Pool(
                settings, self.framing, self.spec, lambda: self._db(self._next_stan)
            )
        return self.pool

    async def _send(self, fields: dict[str, str]) -> dict[str, Any]:
        """Send on the least busy connection; raises NotSent or Unanswered."""
        connection = await self._pool().acquire()
        return await connection.exchange(fields, self.config.response_timeout)

    # -- messages --------------------------------------------------------------------

    def _original_message(self, txn: Transaction) -> OriginalMessage | None:
        """For a reversal entry: what its original was sent as, if this sink sent it."""
        if txn.entry is not Entry.REVERSAL:
            return None
        found = self._original(txn)
        if found is None:
            return None
        return OriginalMessage(found.mti, found.stan, found.sent_time)

    # -- delivery --------------------------------------------------------------------

    async def deliver(self, claimed: Claimed) -> Delivered:
        """Post one transaction (see the module docstring); raise :class:`DeliveryError`."""
        if self._limit is None:
            self._limit = asyncio.Semaphore(self.config.max_in_flight)
        exchange, version = await self._db(self._load, claimed.delivery_id)
        summary = exchange.describe() if exchange else None
        async with self._limit:
            try:
                return await self._deliver(claimed, exchange, version)
            except JournalConflict:
                raise DeliveryError(
                    "another worker changed this delivery's ISO 8583 exchange meanwhile; "
                    "nothing more was sent",
                    retryable=True,
                    request_summary=summary,
                ) from None
            except EncodeError as exc:
                raise DeliveryError(
                    f"cannot encode: {exc}", retryable=False, request_summary=summary
                ) from None

    async def _deliver(
        self, claimed: Claimed, exchange: Exchange | None, version: Version | None
    ) -> Delivered:
        if exchange is not None and version is not None:
            if exchange.phase == "posted":
                return Delivered(
                    status_code=_int(exchange.code),
                    note=f"already posted: {exchange.describe()}",
                    document_id=f"{exchange.rrn.strip()}/{exchange.stan:06}",
                    request_summary=exchange.describe(),
                )
            if exchange.phase == "reversing" or (
                exchange.phase == "sent" and exchange.mti == self.request_mti
            ):
                exchange, version = await self._reverse(
                    claimed, exchange, version, "an earlier attempt"
                )
            elif exchange.phase == "sent":
                return await self._repeat(claimed, exchange, version, self.config.repeats + 1)
        try:
            # Connect first: nothing is journaled for a host that is down.
            await self._pool().acquire()
        except NotSent as exc:
            raise DeliveryError(str(exc), retryable=True) from None
        return await self._send_new(claimed, exchange, version)

    async def _send_new(
        self, claimed: Claimed, previous: Exchange | None, version: Version | None
    ) -> Delivered:
        txn = claimed.transaction
        now = utcnow()
        original = self._original_message(txn)
        built: dict[str, dict[str, str]] = {}

        def make(stan: int) -> Exchange:
            fields = built["fields"] = self.messages.financial(txn, stan, now, original)
            return Exchange(
                phase="sent",
                mti=fields["t"],
                stan=stan,
                rrn=fields["37"],
                sent_at=now.isoformat(),
                reversals=previous.reversals if previous else 0,
            )

        exchange, sent = await self._db(self._begin, claimed.delivery_id, make, version)
        fields = built["fields"]
        try:
            answer = await self._send(fields)
        except NotSent as exc:
            await self._db(self._save, claimed.delivery_id, exchange.but(phase="unsent"), sent)
            raise DeliveryError(
                f"not sent: {exc}", retryable=True, request_summary=exchange.describe()
            ) from None
        except Unanswered as exc:
            if exchange.mti == self.request_mti:
                await self._reverse(claimed, exchange, sent, str(exc))
                raise DeliveryError(
                    f"{exc}; reversed, the original goes again with a new STAN",
                    retryable=True,
                    unknown_outcome=True,
                    request_summary=exchange.describe(),
                ) from None
            return await self._repeat(claimed, exchange, sent, self.config.repeats, str(exc))
        return await self._answered(claimed, exchange, sent, answer)

    async def _repeat(
        self, claimed: Claimed, exchange: Exchange, version: Version, times: int, why: str = ""
    ) -> Delivered:
        """Repeat an unanswered advice (0221, same STAN and RRN) up to ``times`` times."""
        txn = claimed.transaction
        fields = self.messages.repeat(txn, exchange, self._original_message(txn))
        problem = why or "unanswered at an earlier attempt"
        for _ in range(times):
            try:
                answer = await self._send(fields)
            except (NotSent, Unanswered) as exc:
                problem = str(exc)
                exchange = exchange.but(repeats=exchange.repeats + 1)
                continue
            return await self._answered(claimed, exchange, version, answer)
        await self._db(self._save, claimed.delivery_id, exchange, version)
        raise DeliveryError(
            f"{problem}; {exchange.mti} STAN {exchange.stan:06} repeated as {fields['t']} "
            f"{exchange.repeats} times so far, again at the next attempt",
            retryable=True,
            unknown_outcome=True,
            request_summary=exchange.describe(),
        )

    async def _reverse(
        self, claimed: Claimed, exchange: Exchange, version: Version, why: str
    ) -> tuple[Exchange, Version]:
        """Reverse an unanswered request until the host confirms; returns the journal
        after the reversal, or raises :class:`DeliveryError` (the journal says what is
        still to do)."""
        txn = claimed.transaction
        reversal_mti = self.spec.mti["reversal"]
        first = exchange.phase != "reversing"
        if first:
            now = utcnow()
            exchange, version = await self._db(
                self._begin,
                claimed.delivery_id,
                lambda stan: exchange.but(
                    phase="reversing",
                    reversal_stan=stan,
                    reversal_sent_at=now.isoformat(),
                    repeats=0,
                ),
                version,
            )
            log.warning(
                "reversing a request whose outcome is unknown",
                sink=self.name,
                delivery=claimed.delivery_id,
                exchange=exchange.describe(),
                reason=why,
            )
        fields = self.messages.reversal(txn, exchange)
        problem = why
        for sent in range(self.config.repeats + 1):
            if not (first and sent == 0):
                fields["t"] = repeat_mti(reversal_mti)
            try:
                answer = await self._send(fields)
            except (NotSent, Unanswered) as exc:
                problem = str(exc)
                exchange = exchange.but(repeats=exchange.repeats + 1)
                continue
            code = str(answer.get("39", ""))
            if code in self.reversal_done:
                reversed_ = exchange.but(
                    phase="reversed", reversals=exchange.reversals + 1, code=code
                )
                return reversed_, await self._db(
                    self._save, claimed.delivery_id, reversed_, version
                )
            exchange = exchange.but(code=code)
            await self._db(self._save, claimed.delivery_id, exchange, version)
            retry = self.codes.get(code) == "retry"
            raise DeliveryError(
                f"the host answered {code} to the reversal (STAN {exchange.reversal_stan:06}) "
                f"of {exchange.mti} STAN {exchange.stan:06}: "
                + (
                    "reversal repeated at the next attempt"
                    if retry
                    else "the original may be posted; a person must check with the host "
                    "(a replay repeats the reversal)"
                ),
                retryable=retry,
                unknown_outcome=True,
                status=_int(code),
                request_summary=exchange.describe(),
            )
        await self._db(self._save, claimed.delivery_id, exchange, version)
        raise DeliveryError(
            f"{problem}; reversal {reversal_mti} STAN {exchange.reversal_stan:06} of "
            f"{exchange.mti} STAN {exchange.stan:06} unanswered, repeated as "
            f"{repeat_mti(reversal_mti)} at the next attempt before the original is sent again",
            retryable=True,
            unknown_outcome=True,
            request_summary=exchange.describe(),
        )

    async def _answered(
        self, claimed: Claimed, exchange: Exchange, version: Version, answer: dict[str, Any]
    ) -> Delivered:
        code = str(answer.get("39", ""))
        action = self.codes.get(code, "dead")
        summary = exchange.describe()
        response = f"{answer.get('t')} code {code}"
        forced = (
            action == "duplicate" and exchange.reversals > 0 and exchange.mti == self.request_mti
        )
        if forced:
            # The host says it has this RRN, but the earlier posting was reversed: it has
            # nothing now. Never count that as delivered.
            action = "dead"
        if action in ("approved", "duplicate"):
            posted = exchange.but(phase="posted", code=code)
            try:
                await self._db(self._save, claimed.delivery_id, posted, version)
            except JournalConflict:
                log.warning(
                    "journal changed under an approved posting", delivery=claimed.delivery_id
                )
            auth = str(answer.get("38", "")).strip()
            return Delivered(
                status_code=_int(code),
                response=response,
                note=None if action == "approved" else f"{code}: the host already had it",
                document_id=auth or f"{exchange.rrn.strip()}/{exchange.stan:06}",
                request_summary=summary,
            )
        # A request answered "try again" was not posted: the next attempt is a new
        # exchange. An advice is retried as a repeat (0221, same STAN and RRN) instead:
        # a "try again" to a repeat does not say the first one was not booked, and the
        # host recognises a repeat of what it has.
        repeat = action == "retry" and exchange.mti != self.request_mti
        phase: Phase = "sent" if repeat else "refused"
        await self._db(
            self._save, claimed.delivery_id, exchange.but(phase=phase, code=code), version
        )
        known = code in self.codes
        raise DeliveryError(
            f"the host answered {code} to {exchange.mti} STAN {exchange.stan:06}"
            + ("" if known else " (not in the response code table: dead letter)")
            + (
                "; repeated as " + repeat_mti(exchange.mti) + " at the next attempt"
                if repeat
                else ""
            )
            + (
                "; the host calls the new request a duplicate of the posting it reversed: "
                "nothing is posted, a person must check with the host"
                if forced
                else ""
            ),
            retryable=action == "retry",
            status=_int(code),
            response=response,
            request_summary=summary,
        )

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None


def _int(code: str | None) -> int | None:
    return int(code) if code and code.isdigit() else None
