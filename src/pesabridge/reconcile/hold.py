"""Holding large callbacks until a statement confirms them (``hold_above``).

A callback is fast but unproven: a forged or mis-routed one looks exactly like a real
payment until the provider's statement lists it. With ``hold_above`` set, a callback of
at least that amount is recorded (and acknowledged) as usual but routed to no sink: its
outbox rows are created by reconciliation once a statement lists the same transaction
(with ``INSERT ... ON CONFLICT DO NOTHING``, so it is delivered exactly once), and never
if none does (it stays an ``unconfirmed`` exception, held).

The hold is applied where callbacks are routed, so the outbox and its claim are
untouched: :class:`HoldingRouting` is the :class:`~pesabridge.routing.Routing` the
running system gives its sources.
"""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from ..model import Transaction
from ..routing import Routing
from ..store import Router
from .settings import ReconciliationConfig

if TYPE_CHECKING:
    from ..config import Config, RouteConfig


class HoldingRouting(Routing):
    """Routes like :class:`Routing`, except that the callback sources' transactions at
    or above their account's ``hold_above`` go nowhere (yet)."""

    def __init__(
        self,
        routes: Sequence[RouteConfig],
        settings: ReconciliationConfig,
        callback_sources: Sequence[str],
    ) -> None:
        super().__init__(routes)
        self._settings = settings
        self._callback_sources = set(callback_sources)
        self._thresholds: dict[tuple[str, str], tuple[Decimal | None, frozenset[str]]] = {}

    def _threshold(self, txn: Transaction) -> tuple[Decimal | None, frozenset[str]]:
        key = (txn.provider, txn.account or "")
        found = self._thresholds.get(key)
        if found is None:
            account = self._settings.account(key[1], key[0])
            found = (self._settings.hold_threshold(account), frozenset(account.callback_entries))
            self._thresholds[key] = found
        return found

    def held(self, txn: Transaction) -> bool:
        """Whether a callback of ``txn`` waits for a statement."""
        threshold, entries = self._threshold(txn)
        return threshold is not None and txn.amount >= threshold and txn.entry.value in entries

    def router_for(self, source: str) -> Router:
        inner = super().router_for(source)
        if source not in self._callback_sources:
            return inner

        def route(txn: Transaction) -> Sequence[str]:
            return [] if self.held(txn) else inner(txn)

        return route


def routing_for(config: Config) -> Routing:
    """The routing of the running system: holding when any ``hold_above`` is set."""
    settings = config.reconciliation
    if settings.hold_above is None and all(a.hold_above is None for a in settings.accounts):
        return Routing(config.routes)
    callback_sources = [s.name for s in config.sources if not hasattr(s, "include")]
    return HoldingRouting(config.routes, settings, callback_sources)
