"""The reconciliation service: what the CLI, the automatic run after an ingest and the
dashboard call. See ``docs/reconciliation.md``."""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from ..model.currency import minor_units
from ..store import Router, Store, utcnow
from ..store.rows import to_minor
from ..store.schema import files
from . import classify, continuity, persist, posting, sides
from .backfill import backfill
from .backoffice import BackofficeError, Posting, Unreadable, fetch, load_file
from .periods import period_bounds, statement_files
from .records import (
    BACKFILLED,
    OPEN,
    REPAIRED,
    DaySummary,
    ReconciliationReport,
    ReconException,
)
from .scope import Result, Scope
from .settings import BackofficeSettings, ReconciliationConfig

if TYPE_CHECKING:
    from ..config import Config

log = structlog.get_logger("pesabridge.reconcile")


_QUIET = ("cli", "ingest")
"""Triggers whose command prints the outcome itself: no log line (an unconfigured
logger writes to stdout, where the report goes)."""


class ReconcileError(Exception):
    """A reconciliation that cannot run (unreadable statement or back-office record,
    an ambiguous sink); the message says what and where."""


def _settings(config: Config | ReconciliationConfig | None) -> ReconciliationConfig:
    if isinstance(config, ReconciliationConfig):
        return config
    found = getattr(config, "reconciliation", None)
    return found if isinstance(found, ReconciliationConfig) else ReconciliationConfig()


def _callback_router(
    config: Config | ReconciliationConfig | None, sources: Sequence[str] | None
) -> Router | None:
    """Where the account's callbacks go: the routes of its callback sources."""
    if config is None or isinstance(config, ReconciliationConfig) or not config.routes:
        return None
    from ..routing import Routing  # imported here: pesabridge.config embeds our settings

    names = (
        list(sources)
        if sources is not None
        else [s.name for s in config.sources if not hasattr(s, "include")]
    )
    routing = Routing(config.routes)
    routers = [routing.router_for(name) for name in names]
    if not routers:
        return None

    def route(txn: Any) -> list[str]:
        return sorted({sink for router in routers for sink in router(txn)})

    return route


def run_reconciliation(
    store: Store,
    account: str,
    start: date,
    end: date,
    *,
    statement: Path | None = None,
    backoffice: Path | None = None,
    config: Config | ReconciliationConfig | None = None,
    provider: str | None = None,
    sink: str | None = None,
    trigger: str = "api",
    statements: Mapping[int, Path] | None = None,
) -> ReconciliationReport:
    """Reconcile ``account`` over the days ``start`` to ``end`` (inclusive, in the
    account's zone), persist the outcome and return the report.

    ``statement`` is ingested first (once by content; recorded without routes).
    ``backoffice`` is the back office's export (else its configured ``url``, if any) to
    compare with the deliveries to ``sink``. ``statements`` maps ingested files' ids to
    their local copies (their balances are read from them). ``config`` is the whole
    :class:`~pesabridge.config.Config` (its routes route backfills) or just its
    ``reconciliation`` section. Raises :class:`ReconcileError`.
    """
    rc = _settings(config)
    settings = rc.account(account, provider or "mpesa")
    provider = settings.provider
    zone = rc.zone(settings)
    currency = settings.currency
    notes: list[str] = []
    at_hand: dict[int, Path] = dict(statements or {})
    if statement is not None:
        file_id = _ingest(store, statement, notes)
        at_hand[file_id] = statement
    start_utc, end_utc = period_bounds(start, end, zone)
    bo_settings = settings.backoffice or rc.backoffice or BackofficeSettings()
    postings, source = _load_backoffice(backoffice, bo_settings, zone, currency, notes)
    digits = minor_units(currency)

    def minor(text: str) -> int:
        return to_minor(Decimal(text), currency)

    threshold = rc.hold_threshold(settings)
    hold = None if threshold is None else to_minor(threshold, currency)
    result = Result(notes=notes)
    with store.read() as conn:
        receives = settings.callbacks
        if receives is None:
            receives = sides.receives_callbacks(conn, provider, account)
        scope = Scope(
            provider, account, start, end, zone, start_utc, end_utc, currency,
            settings, rc.rules, receives, hold,
        )  # fmt: skip
        coverage = statement_files(conn, provider, account, start_utc, end_utc, minor)
        if not coverage:
            notes.append("no ingested statement covers this period: callbacks await one")
        classify.statement_and_callbacks(conn, scope, coverage, result)
        classify.discrepancies(conn, scope, result)
        classify.orphans(conn, scope, result)
        continuity.balances(conn, scope, coverage, result, at_hand)
        if postings is not None:
            target = sink or bo_settings.sink or _only_sink(conn, scope)
            posting.backoffice(conn, scope, target, postings, source or "-", result)
    del digits
    route = _callback_router(config, settings.callback_sources)
    now = utcnow()
    # Two runs over the same days at once (the automatic one and a person's) may insert
    # the same finding; the loser runs its transaction again and finds the row known.
    for attempt in range(3):
        try:
            with store.write() as conn:
                run_id = persist.start_run(
                    conn,
                    provider=provider,
                    account=account,
                    start=start,
                    end=end,
                    trigger=trigger,
                    statement=str(statement) if statement else None,
                    backoffice=source,
                    now=now,
                )
                added = backfill(conn, result.backfill, route, now)
                released = backfill(conn, result.release, route, now, mark=False)
                if result.backfill and route is None:
                    notes.append(
                        f"{len(result.backfill)} backfilled transaction(s) kept their statement "
                        "routes (no config with callback routes was given)"
                    )
                persist.save_days(
                    conn, run_id, provider=provider, account=account, start=start, end=end,
                    currency=currency, tally=result.tally,
                )  # fmt: skip
                persist.save_findings(
                    conn, run_id, provider=provider, account=account, start=start, end=end,
                    findings=result.findings, checked=result.checked, now=now,
                )  # fmt: skip
                still_open = persist.exceptions(
                    conn, provider=provider, account=account, start=start, end=end, limit=None
                )
                repaired = persist.exceptions(
                    conn, provider=provider, account=account, start=start, end=end,
                    status=REPAIRED, kinds=[BACKFILLED], limit=None,
                )  # fmt: skip
                totals: dict[str, list[int]] = {}
                for (_day, outcome), (count, amount) in result.tally.items():
                    slot = totals.setdefault(outcome, [0, 0])
                    slot[0] += count
                    slot[1] += amount
                persist.finish_run(
                    conn,
                    run_id,
                    open_exceptions=len(still_open),
                    summary={
                        "outcomes": totals,
                        "backfilled_deliveries": added,
                        "released_deliveries": released,
                        "notes": notes,
                    },
                    now=utcnow(),
                )
                days = [
                    d
                    for d in persist.day_summaries(conn, account=account, start=start, end=end)
                    if d.provider == provider
                ]
            break
        except IntegrityError:
            if attempt == 2:
                raise
            time.sleep(0.1 * (attempt + 1))
    if trigger not in _QUIET:
        log.info(
            "reconciled",
            account=account,
            start=str(start),
            end=str(end),
            open=len(still_open),
            backfilled=len(result.backfill),
            deliveries_added=added,
        )
    return ReconciliationReport(
        run_id=run_id,
        provider=provider,
        account=account,
        start=start,
        end=end,
        currency=currency,
        days=days,
        exceptions=still_open,
        repaired=repaired,
        matches=result.matches,
        notes=notes,
        backfilled_deliveries=added,
        released_deliveries=released,
    )


def _ingest(store: Store, path: Path, notes: list[str]) -> int:
    from ..pipeline import ingest_file
    from ..routing import no_route

    if not path.is_file():
        raise ReconcileError(f"{path}: no such statement file")
    summary = ingest_file(store, path, source="reconcile", route=no_route)
    if summary.error or summary.file_id is None:
        raise ReconcileError(summary.error or f"{path}: not ingested")
    if summary.rejected:
        notes.append(
            f"{path.name}: {summary.rejected} row(s) rejected at ingest "
            "(see `pesabridge files`); they are not compared"
        )
    return summary.file_id


def _load_backoffice(
    path: Path | None,
    settings: BackofficeSettings,
    zone: Any,
    currency: str,
    notes: list[str],
) -> tuple[list[Posting] | None, str | None]:
    digits = minor_units(currency)
    unreadable: list[Unreadable]
    try:
        if path is not None:
            postings, unreadable = load_file(path, settings, zone, digits)
            source = str(path)
        elif settings.url:
            postings, unreadable = fetch(settings, zone, digits)
            source = settings.url
        else:
            return None, None
    except BackofficeError as exc:
        raise ReconcileError(str(exc)) from None
    for bad in unreadable[:20]:
        notes.append(f"back-office row not compared: {bad}")
    if len(unreadable) > 20:
        notes.append(f"... and {len(unreadable) - 20} more back-office rows not compared")
    return postings, source


def _only_sink(conn: Any, scope: Scope) -> str:
    rows = sides.sink_deliveries(
        conn, scope.provider, scope.account, scope.start_utc, scope.end_utc, None
    )
    names: list[str] = sorted({row.sink for row in rows})
    if len(names) == 1:
        return names[0]
    if not names:
        raise ReconcileError(
            f"nothing of {scope.account} was routed to a sink from {scope.start} to "
            f"{scope.end}: there is nothing to compare the back office's record with"
        )
    raise ReconcileError(
        f"{scope.account}'s transactions go to several sinks ({', '.join(names)}): "
        "name the back office's with --sink or backoffice.sink"
    )


def reconcile_after_ingest(
    store: Store,
    file_id: int,
    config: Config | ReconciliationConfig | None,
    path: Path | None = None,
    *,
    trigger: str = "auto",
) -> ReconciliationReport | None:
    """Reconcile the days an ingested statement covers (``reconciliation.auto``);
    ``path`` is the file itself, when still at hand."""
    rc = _settings(config)
    if not rc.auto:
        return None
    with store.read() as conn:
        header_text = conn.execute(select(files.c.header).where(files.c.id == file_id)).scalar()
    if not header_text:
        return None
    header = json.loads(header_text)
    account, provider = header.get("account"), header.get("provider")
    if (
        not account
        or not provider
        or not header.get("period_start")
        or not header.get("period_end")
    ):
        return None
    zone = rc.zone(rc.account(account, provider))
    first = datetime.fromisoformat(header["period_start"]).astimezone(zone).date()
    last = (
        (datetime.fromisoformat(header["period_end"]) - timedelta(microseconds=1))
        .astimezone(zone)
        .date()
    )
    last = max(first, last)
    return run_reconciliation(
        store,
        account,
        first,
        last,
        config=config,
        provider=provider,
        trigger=trigger,
        statements={file_id: path} if path is not None else None,
    )


def list_day_summaries(
    store: Store,
    *,
    account: str | None = None,
    start: date | None = None,
    end: date | None = None,
) -> list[DaySummary]:
    """Per account and day (as last reconciled): counts and sums per outcome, and how
    many exceptions of the day are open now."""
    with store.read() as conn:
        return persist.day_summaries(conn, account=account, start=start, end=end)


def list_exceptions(
    store: Store,
    *,
    account: str | None = None,
    day: date | None = None,
    status: str = OPEN,
    limit: int = 100,
    offset: int = 0,
) -> list[ReconException]:
    """Exceptions by day then id; ``status`` ``open`` (default), ``resolved``,
    ``repaired``, ``cleared`` or ``all``."""
    with store.read() as conn:
        return persist.exceptions(
            conn, account=account, day=day, status=status, limit=limit, offset=offset
        )


def resolve_exception(store: Store, exception_id: int, *, user: str, comment: str) -> None:
    """Close an open exception with a comment (recorded with the user and time, and kept
    in the audit trail); a resolved exception is not reported again by later runs.
    Raises :class:`ReconcileError` for an unknown id, an exception that is not open, or
    an empty comment or user."""
    if not comment.strip():
        raise ReconcileError("a resolution needs a comment saying why")
    if not user.strip():
        raise ReconcileError("a resolution needs the user who resolves it")
    with store.write() as conn:
        status = persist.exception_status(conn, exception_id)
        if status is None:
            raise ReconcileError(f"no reconciliation exception {exception_id}")
        if status != OPEN:
            raise ReconcileError(f"exception {exception_id} is {status}, not open")
        persist.resolve(
            conn, exception_id, user=user.strip(), comment=comment.strip(), now=utcnow()
        )
    log.info("reconciliation exception resolved", exception_id=exception_id, user=user)


def exceptions_for_transaction(store: Store, transaction_id: int) -> list[ReconException]:
    """Every exception about one transaction, whatever its status, oldest first."""
    with store.read() as conn:
        return persist.exceptions(conn, transaction_id=transaction_id, status=None, limit=None)
