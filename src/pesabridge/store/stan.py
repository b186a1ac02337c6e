"""Durable ISO 8583 system trace audit numbers: unique per sink per day, across restarts.

A host rejects (or, worse, matches to the wrong message) a STAN it has seen that day, so
the numbers come from a counter row per (sink, day) incremented in the ledger, not from
memory. Days are counted in the host's zone (East Africa Time by default).
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from ..errors import StoreError
from ..model import EAT
from .schema import stan_counters
from .store import Store, utcnow

STAN_MAX = 999_999


def allocate(conn: Connection, sink: str, day: str, count: int = 1) -> list[int]:
    """``count`` consecutive fresh STANs for ``sink`` on ``day`` (``YYYY-MM-DD``)."""
    if count < 1:
        raise ValueError("count must be at least 1")
    dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
    statement = dialect.insert(stan_counters).values(sink=sink, day=day, last=count)
    statement = statement.on_conflict_do_update(
        index_elements=[stan_counters.c.sink, stan_counters.c.day],
        set_={"last": stan_counters.c.last + count},
    ).returning(stan_counters.c.last)
    last = int(conn.execute(statement).scalar_one())
    if last > STAN_MAX:
        raise StoreError(
            f"sink {sink!r} has used every STAN (1..{STAN_MAX}) for {day}; "
            "the host cannot tell more messages apart today"
        )
    return list(range(last - count + 1, last + 1))


class DurableStanAllocator:
    """A :class:`~pesabridge.encoders.iso8583.StanAllocator` backed by the ledger."""

    def __init__(self, store: Store, sink: str, zone: tzinfo = EAT) -> None:
        self.store = store
        self.sink = sink
        self.zone = zone

    def day(self, now: datetime | None = None) -> str:
        """Today in the host's zone, as the counter's key."""
        return (now or utcnow()).astimezone(self.zone).date().isoformat()

    def allocate(self) -> int:
        """The next STAN for this sink today; committed before it is returned."""
        with self.store.write() as conn:
            return allocate(conn, self.sink, self.day())[0]
