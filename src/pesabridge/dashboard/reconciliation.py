"""The reconciliation module's read and resolve functions, when it provides them.

The dashboard calls exactly what ``pesabridge.reconcile`` exports
(``list_day_summaries``, ``list_exceptions``, ``resolve_exception``,
``exceptions_for_transaction``); a build without them shows "reconciliation not
available" instead of failing.
"""

from __future__ import annotations

import importlib
from typing import Any

from ..store import Store

NAMES = (
    "list_day_summaries",
    "list_exceptions",
    "resolve_exception",
    "exceptions_for_transaction",
)


def api() -> Any | None:
    """The ``pesabridge.reconcile`` module, or None when it lacks the functions."""
    try:
        module = importlib.import_module("pesabridge.reconcile")
    except ImportError:
        return None
    return module if all(hasattr(module, name) for name in NAMES) else None


def exceptions_for(store: Store, transaction_id: int) -> list[Any] | None:
    """A transaction's reconciliation exceptions; None when reconciliation is absent."""
    module = api()
    if module is None:
        return None
    return list(module.exceptions_for_transaction(store, transaction_id))
