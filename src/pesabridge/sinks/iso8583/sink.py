"""ISO 8583 host sink: each transaction as one financial message, posted exactly once.

The sink puts the parts together: the messages (:mod:`.builder`, on the ``iso8583``
encoder), the pool of signed-on connections (:mod:`.pool`), the STANs and the exchange
journal in the ledger (:mod:`.journal`), and the advice, repeat and reversal exchange
that makes one posting of each transaction (:mod:`.posting`).
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from ...config import ComponentConfig
from ...encoders.base import EncodeError
from ...encoders.iso8583 import Iso8583Encoder
from ...errors import DeliveryError
from ...store import Claimed, Store
from ..base import Delivered
from .builder import MessageBuilder
from .config import Iso8583SinkConfig
from .framing import Framing, parse_tpdu
from .journal import JournalConflict, SinkJournal
from .pool import Iso8583Pool, PoolSettings
from .posting import Poster


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
        self.messages = MessageBuilder(self.encoder, self.name)
        self.concurrency = config.max_in_flight
        """Deliveries this sink takes at once (the worker sizes its senders by it)."""
        self.journal = SinkJournal(self.name, self.zone, store)
        self.poster = Poster(
            config, self.spec, self.messages, self.journal, self._send, self._connect
        )
        self.pool: Iso8583Pool | None = None
        self._limit: asyncio.Semaphore | None = None

    @property
    def store(self) -> Store | None:
        """The ledger this sink's STANs and journal are in."""
        return self.journal.store

    def attach(self, store: Store) -> None:
        """Use ``store`` for STANs and the journal (the runtime calls this)."""
        self.journal.store = store

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
                settings, self.framing, self.spec, lambda: self.journal.db(self.journal.next_stan)
            )
        return self.pool

    async def _send(self, fields: dict[str, str]) -> dict[str, Any]:
        """Send on the least busy connection; raises NotSent or Unanswered."""
        connection = await self._pool().acquire()
        return await connection.exchange(fields, self.config.response_timeout)

    async def _connect(self) -> None:
        """Have a signed-on connection (raises NotSent), so nothing is journaled for a
        host that is down."""
        await self._pool().acquire()

    # -- delivery --------------------------------------------------------------------

    async def deliver(self, claimed: Claimed) -> Delivered:
        """Post one transaction (see :mod:`.posting`); raise :class:`DeliveryError`."""
        if self._limit is None:
            self._limit = asyncio.Semaphore(self.config.max_in_flight)
        exchange, version = await self.journal.db(self.journal.load, claimed.delivery_id)
        summary = exchange.describe() if exchange else None
        async with self._limit:
            try:
                return await self.poster.deliver(claimed, exchange, version)
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

    async def close(self) -> None:
        if self.pool is not None:
            await self.pool.close()
            self.pool = None
