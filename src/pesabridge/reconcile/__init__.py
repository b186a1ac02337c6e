"""Reconciliation: the provider's statement against the callbacks, the deliveries and
the back office's own record, for an account and a period; the gaps filled
automatically (backfill) and what is left shown to a person (exceptions).

See ``docs/reconciliation.md``.
"""

from .records import (
    EXCEPTION_KINDS,
    OUTCOMES,
    DaySummary,
    MatchCount,
    ReconciliationReport,
    ReconException,
)
from .service import (
    ReconcileError,
    exceptions_for_transaction,
    list_day_summaries,
    list_exceptions,
    reconcile_after_ingest,
    resolve_exception,
    run_reconciliation,
)
from .settings import ReconciliationConfig

__all__ = [
    "EXCEPTION_KINDS",
    "OUTCOMES",
    "DaySummary",
    "MatchCount",
    "ReconException",
    "ReconcileError",
    "ReconciliationConfig",
    "ReconciliationReport",
    "exceptions_for_transaction",
    "list_day_summaries",
    "list_exceptions",
    "reconcile_after_ingest",
    "resolve_exception",
    "run_reconciliation",
]
