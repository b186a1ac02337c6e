"""The sink's messages: a transaction's financial message, its repeat, its reversal."""

from __future__ import annotations

import dataclasses
from datetime import datetime

from ...encoders.base import MessageContext
from ...encoders.iso8583 import Iso8583Encoder, OriginalMessage
from ...model import Entry, Transaction
from ...store.exchanges import Exchange
from .messages import repeat_mti


class MessageBuilder:
    """Builds every message of an exchange from the transaction and the journal, so a
    repeat or a reversal sent after a restart carries what the first message carried."""

    def __init__(self, encoder: Iso8583Encoder, sink: str) -> None:
        self.encoder = encoder
        self.sink = sink

    def financial(
        self,
        txn: Transaction,
        stan: int,
        now: datetime,
        original: OriginalMessage | None = None,
    ) -> dict[str, str]:
        """The advice or request (or, for a reversal entry, the reversal advice)."""
        return self.encoder.message(
            txn, MessageContext(stan=stan, sink=self.sink, now=now), original
        )

    def repeat(
        self, txn: Transaction, exchange: Exchange, original: OriginalMessage | None
    ) -> dict[str, str]:
        """The repeat (0221, 0421) of ``exchange``'s message: the same fields, STAN, RRN
        and transmission time as first sent; only the MTI says it is a repeat."""
        fields = self.financial(txn, exchange.stan, exchange.sent_time, original)
        fields["t"] = repeat_mti(exchange.mti)
        return fields

    def reversal(self, txn: Transaction, exchange: Exchange) -> dict[str, str]:
        """The 0420 undoing ``exchange``'s request: its own STAN, the same RRN and
        processing code, the original's MTI, STAN and transmission time in the original
        data elements (field 90; 56 in 1993)."""
        if exchange.reversal_stan is None or exchange.reversal_sent_at is None:
            raise ValueError("the journal has no reversal STAN yet")
        original = OriginalMessage(exchange.mti, exchange.stan, exchange.sent_time, txn.occurred_at)
        request = self.financial(txn, exchange.stan, exchange.sent_time)
        undo = dataclasses.replace(txn, entry=Entry.REVERSAL, related_receipt=txn.receipt)
        when = datetime.fromisoformat(exchange.reversal_sent_at)
        fields = self.financial(undo, exchange.reversal_stan, when, original)
        fields["3"] = request["3"]  # a reversal carries the processing code it reverses
        fields["37"] = request["37"]
        return fields
