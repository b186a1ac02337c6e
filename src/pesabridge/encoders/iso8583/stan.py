"""System trace audit numbers (field 11) for ISO 8583 messages.

STANs come from the caller (``MessageContext.stan``). :class:`StanAllocator` is the
protocol; :class:`InMemoryStanAllocator` (1..999999, wrapping to 1) serves the CLI and
tests. The durable allocator, one sequence per sink per day that survives restarts,
belongs to the ISO 8583 sink and is not here.
"""

from __future__ import annotations

import threading
from typing import Protocol

STAN_MAX = 999_999


class StanAllocator(Protocol):
    """Hands out system trace audit numbers, 1..999999."""

    def allocate(self) -> int: ...


class InMemoryStanAllocator:
    """STANs from a counter in memory: ``start``, ``start + 1``, ... 999999, then 1.

    For the CLI and tests. A sink needs
    :class:`pesabridge.store.stan.DurableStanAllocator` (per sink, per day, surviving
    restarts), since a host rejects a repeated STAN.
    """

    def __init__(self, start: int = 1) -> None:
        if not 1 <= start <= STAN_MAX:
            raise ValueError(f"a STAN is 1..{STAN_MAX}, not {start}")
        self._next = start
        self._lock = threading.Lock()

    def allocate(self) -> int:
        with self._lock:
            stan = self._next
            self._next = 1 if stan == STAN_MAX else stan + 1
            return stan
