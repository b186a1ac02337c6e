"""The ISO 8583 sink's side of the ledger: its STANs and its exchange journal.

What is about to be sent is written to the journal (:mod:`pesabridge.store.exchanges`)
before it is sent, so a worker that dies mid-exchange leaves enough for the next one to
repeat the advice or reverse the request before anything else — after a restart too.
STANs are one sequence per sink per day (in the sink's time zone,
:mod:`pesabridge.store.stan`); a STAN and the journal entry that uses it are written in
one transaction.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

from ...model import Transaction
from ...store import Store, utcnow
from ...store import exchanges as journal
from ...store import stan as stans
from ...store.exchanges import Exchange, Version

T = TypeVar("T")


class JournalConflict(Exception):
    """Another worker changed this delivery's journal meanwhile: send nothing."""


class SinkJournal:
    """STANs and journal entries of the sink ``name`` (see the module docstring)."""

    def __init__(self, name: str, zone: ZoneInfo, store: Store | None = None) -> None:
        self.name = name
        self.zone = zone
        self.store = store

    def _store(self) -> Store:
        if self.store is None:
            raise RuntimeError(f"ISO 8583 sink {self.name} has no ledger (attach a store)")
        return self.store

    async def db(self, function: Callable[..., T], *args: Any) -> T:
        """``function(*args)``: on the loop on SQLite, in a thread otherwise."""
        # As the worker does: on SQLite a short write on the loop beats a thread hand-over.
        if self._store().dialect == "sqlite":
            return function(*args)
        return await asyncio.to_thread(function, *args)

    def _day(self) -> str:
        return utcnow().astimezone(self.zone).date().isoformat()

    def next_stan(self) -> int:
        """A STAN of its own (a sign-on or an echo test)."""
        with self._store().write() as conn:
            return stans.allocate(conn, self.name, self._day())[0]

    def begin(
        self, delivery_id: int, make: Callable[[int], Exchange], previous: Version | None
    ) -> tuple[Exchange, Version]:
        """Allocate a STAN and journal what will be sent with it, in one transaction."""
        with self._store().write() as conn:
            exchange = make(stans.allocate(conn, self.name, self._day())[0])
            version = journal.save(conn, delivery_id, exchange, previous)
            if version is None:
                raise JournalConflict()
        return exchange, version

    def save(self, delivery_id: int, exchange: Exchange, previous: Version) -> Version:
        """Journal ``exchange`` over ``previous``; raises :class:`JournalConflict`."""
        with self._store().write() as conn:
            version = journal.save(conn, delivery_id, exchange, previous)
        if version is None:
            raise JournalConflict()
        return version

    def load(self, delivery_id: int) -> tuple[Exchange | None, Version | None]:
        """The delivery's journal entry and its version, if any."""
        with self._store().read() as conn:
            return journal.load(conn, delivery_id)

    def original(self, txn: Transaction) -> Exchange | None:
        """What this sink sent for the original of the reversal ``txn``, if anything."""
        with self._store().read() as conn:
            return journal.original_of(
                conn, self.name, txn.provider, txn.account or "", txn.related_receipt or ""
            )
