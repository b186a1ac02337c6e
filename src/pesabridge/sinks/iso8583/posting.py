"""Posting one transaction to an ISO 8583 host exactly once: advice, repeat, reversal.

The default message is an advice (0220): the payment has already happened, the host
records it. An advice that goes unanswered is repeated as 0221 with the same STAN and RRN
until a 0230 arrives; the host recognises the repeat, so it books it once. A request
(0200, ``message.mti: request``) that goes unanswered may or may not have been posted:
it is reversed (0420, its own STAN, the same RRN, the original's MTI, STAN and time in
field 90), the reversal repeated as 0421 until a 0430 arrives, and only then is the
original sent again, with a new STAN and the same RRN. Either way the host's net effect
is one posting.

Every step is journaled (:mod:`.journal`) before it is sent, so the next attempt, by
any worker, carries on where the last one stopped.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog

from ...encoders.iso8583 import Iso8583Spec, OriginalMessage
from ...errors import DeliveryError
from ...model import Entry, Transaction
from ...store import Claimed, utcnow
from ...store.exchanges import Exchange, Phase, Version
from ..base import Delivered
from .builder import MessageBuilder
from .config import Iso8583SinkConfig
from .connection import NotSent, Unanswered
from .journal import JournalConflict, SinkJournal
from .messages import repeat_mti

log = structlog.get_logger("pesabridge.sinks.iso8583")

Send = Callable[[dict[str, str]], Awaitable[dict[str, Any]]]
"""Sends a message on a connection and returns the answer; raises NotSent or Unanswered."""


class Poster:
    """The advice, repeat and reversal exchange of the sink (see the module docstring)."""

    def __init__(
        self,
        config: Iso8583SinkConfig,
        spec: Iso8583Spec,
        messages: MessageBuilder,
        journal: SinkJournal,
        send: Send,
        connect: Callable[[], Awaitable[object]],
    ) -> None:
        self.config = config
        self.name = config.name
        self.spec = spec
        self.codes = config.code_table()
        self.reversal_done = config.reversal_codes()
        self.request_mti = spec.mti["request"]
        self.messages = messages
        self.journal = journal
        self._send = send
        self._connect = connect

    def _original_message(self, txn: Transaction) -> OriginalMessage | None:
        """For a reversal entry: what its original was sent as, if this sink sent it."""
        if txn.entry is not Entry.REVERSAL:
            return None
        found = self.journal.original(txn)
        if found is None:
            return None
        return OriginalMessage(found.mti, found.stan, found.sent_time)

    async def deliver(
        self, claimed: Claimed, exchange: Exchange | None, version: Version | None
    ) -> Delivered:
        """Post ``claimed``, carrying on from its journal entry (``exchange``, if any)."""
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
            await self._connect()
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

        exchange, sent = await self.journal.db(
            self.journal.begin, claimed.delivery_id, make, version
        )
        fields = built["fields"]
        try:
            answer = await self._send(fields)
        except NotSent as exc:
            await self.journal.db(
                self.journal.save, claimed.delivery_id, exchange.but(phase="unsent"), sent
            )
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
        await self.journal.db(self.journal.save, claimed.delivery_id, exchange, version)
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
            exchange, version = await self.journal.db(
                self.journal.begin,
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
                return reversed_, await self.journal.db(
                    self.journal.save, claimed.delivery_id, reversed_, version
                )
            exchange = exchange.but(code=code)
            await self.journal.db(self.journal.save, claimed.delivery_id, exchange, version)
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
        await self.journal.db(self.journal.save, claimed.delivery_id, exchange, version)
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
                await self.journal.db(self.journal.save, claimed.delivery_id, posted, version)
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
        await self.journal.db(
            self.journal.save, claimed.delivery_id, exchange.but(phase=phase, code=code), version
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


def _int(code: str | None) -> int | None:
    return int(code) if code and code.isdigit() else None
