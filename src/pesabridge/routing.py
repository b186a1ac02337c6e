"""Routes: which sources' transactions go to which sinks."""

from __future__ import annotations

import re
from collections.abc import Sequence

from .config import RouteConfig
from .model import Transaction
from .store import Router


class Routing:
    """Resolves, per source, the sinks a transaction is delivered to."""

    def __init__(self, routes: Sequence[RouteConfig]) -> None:
        self._routes = list(routes)

    def router_for(self, source: str) -> Router:
        """A function from transaction to sink names, for transactions from ``source``."""
        applicable = [
            (r, re.compile(r.reference) if r.reference else None)
            for r in self._routes
            if source in r.from_
        ]

        def route(txn: Transaction) -> list[str]:
            sinks: list[str] = []
            for r, reference in applicable:
                if r.entries is not None and txn.entry.value not in r.entries:
                    continue
                if txn.status.value not in r.statuses:
                    continue
                if r.providers is not None and txn.provider not in r.providers:
                    continue
                if r.accounts is not None and (txn.account or "") not in r.accounts:
                    continue
                if r.directions is not None and txn.direction.value not in r.directions:
                    continue
                if r.amount_min is not None and txn.amount < r.amount_min:
                    continue
                if r.amount_max is not None and txn.amount > r.amount_max:
                    continue
                if reference is not None and (
                    txn.reference is None or not reference.search(txn.reference)
                ):
                    continue
                sinks.extend(s for s in r.to if s not in sinks)
            return sinks

        return route


def no_route(_txn: Transaction) -> list[str]:
    """The router of ``ingest`` without a config: record, deliver nowhere."""
    return []
