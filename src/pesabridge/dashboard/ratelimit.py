"""Login rate limiting per client address (in this process; lockout is in the ledger).

Only failed logins count, so an office behind one address is never slowed down by its
own successful logins; password spraying across many accounts from one address is.
"""

from __future__ import annotations

import threading
import time
from collections import deque


class RateLimiter:
    """At most ``limit`` failures per ``window`` seconds per key (a sliding window)."""

    def __init__(self, limit: int = 20, window: float = 60.0) -> None:
        self.limit = limit
        self.window = window
        self._events: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _recent(self, key: str, now: float) -> deque[float]:
        events = self._events.setdefault(key, deque())
        while events and events[0] <= now - self.window:
            events.popleft()
        return events

    def blocked(self, key: str) -> bool:
        """Whether ``key`` has used up its failures for now."""
        with self._lock:
            return len(self._recent(key, time.monotonic())) >= self.limit

    def failed(self, key: str) -> None:
        """Count a failure for ``key``."""
        now = time.monotonic()
        with self._lock:
            self._recent(key, now).append(now)
            if len(self._events) > 10_000:
                # Forget idle clients so a scan from many addresses cannot grow this forever.
                for stale in [k for k, v in self._events.items() if not v]:
                    del self._events[stale]
