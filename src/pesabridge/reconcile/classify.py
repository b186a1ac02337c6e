"""Statement against callbacks: every transaction of the period classified by its
sightings (one streamed pass), leftovers paired by the match rules, discrepancies, and
charges and reversals checked against their originals."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection, Row

from . import sides
from .matching import Item, match, normalise_reference
from .periods import Coverage, covered, day_of, raw_day_of
from .records import (
    AWAITING_STATEMENT,
    BACKFILLED,
    DISCREPANCY,
    DUPLICATE_CALLBACK,
    HELD,
    MATCHED,
    ORPHAN,
    REPAIRED,
    RULE_MATCH,
    STATEMENT_ONLY,
    UNCONFIRMED,
    Finding,
    MatchCount,
)
from .scope import Result, Scope, finding_key
from .sides import moment


@dataclass(frozen=True, slots=True)
class Kept:
    """A transaction the classification keeps (statement only, or callback only)."""

    id: int
    receipt: str
    entry: str
    amount_minor: int
    currency: str
    occurred_at: datetime
    callbacks: int


def statement_and_callbacks(
    conn: Connection, scope: Scope, coverage: Sequence[Coverage], out: Result
) -> None:
    """Classify every transaction of the period by its sightings (one streamed query)."""
    local_day = day_of(scope.zone)
    raw_day = raw_day_of(scope.zone)
    is_covered = covered(coverage)
    expected_by_callback = set(scope.settings.callback_entries)
    lost: list[Kept] = []  # statement only, where a callback was due
    unconfirmed: list[Kept] = []
    exact = 0
    tally = out.tally
    receives = scope.receives_callbacks
    hold = scope.hold_minor
    # the hot loop: a million rows, so the tally is updated inline
    for (
        txn_id,
        receipt,
        entry,
        amount,
        currency,
        when,
        status,
        files,
        callbacks,
    ) in sides.ledger_rows(conn, scope.provider, scope.account, scope.start_utc, scope.end_utc):
        day = raw_day(when)
        if files and callbacks:
            outcome = MATCHED
            exact += 1
            if hold is not None and amount >= hold and entry in expected_by_callback:
                out.release.append(txn_id)  # routed unless it has its outbox rows
        elif files:
            if receives and entry in expected_by_callback and status == "completed":
                lost.append(Kept(txn_id, receipt, entry, amount, currency, moment(when), 0))
                outcome = ""
            else:
                outcome = STATEMENT_ONLY
        elif callbacks:
            at = moment(when)
            if hold is not None and amount >= hold and entry in expected_by_callback:
                out.count(day, HELD, amount)
            if is_covered(at):
                unconfirmed.append(Kept(txn_id, receipt, entry, amount, currency, at, callbacks))
                outcome = ""
            else:
                outcome = AWAITING_STATEMENT
        else:
            continue
        if outcome:
            slot = tally.get((day, outcome))
            if slot is None:
                tally[(day, outcome)] = [1, amount]
            else:
                slot[0] += 1
                slot[1] += amount
        if callbacks > 1:
            out.count(day, DUPLICATE_CALLBACK, amount)
    if exact:
        out.matches.append(MatchCount("identity", exact, 1.0))
    _pair_leftovers(conn, scope, lost, unconfirmed, out, local_day)
    names = ", ".join(c.name for c in coverage) or "-"
    count = out.count
    for row in unconfirmed:
        day = local_day(row.occurred_at)
        count(day, UNCONFIRMED, row.amount_minor)
        out.findings.append(
            Finding(
                key=finding_key(UNCONFIRMED, scope.provider, scope.account, row.receipt, row.entry),
                kind=UNCONFIRMED,
                day=day,
                detail=(
                    f"received by callback ({row.callbacks}x) at "
                    f"{row.occurred_at.astimezone(scope.zone):%Y-%m-%d %H:%M:%S}, absent from "
                    f"the statement covering that time ({names}): forged, mis-routed or "
                    "reversed? Check with the provider before relying on it"
                    + (
                        "; held: not delivered until a statement confirms it"
                        if hold is not None and row.amount_minor >= hold
                        else ""
                    )
                ),
                transaction_id=row.id,
                receipt=row.receipt,
                amount_minor=row.amount_minor,
                currency=row.currency,
            )
        )
    for row in lost:
        day = local_day(row.occurred_at)
        count(day, BACKFILLED, row.amount_minor)
        out.backfill.append(row.id)
        out.findings.append(
            Finding(
                key=finding_key(BACKFILLED, scope.provider, scope.account, row.receipt, row.entry),
                kind=BACKFILLED,
                status=REPAIRED,
                day=day,
                detail="in the statement, never received by callback: backfilled from the "
                "statement row and routed like any transaction",
                transaction_id=row.id,
                receipt=row.receipt,
                amount_minor=row.amount_minor,
                currency=row.currency,
            )
        )
    out.checked.add(UNCONFIRMED)
    out.checked.add(RULE_MATCH)


def _pair_leftovers(
    conn: Connection,
    scope: Scope,
    lost: list[Kept],
    unconfirmed: list[Kept],
    out: Result,
    local_day: Callable[[datetime], date],
) -> None:
    """Statement rows and callbacks with different receipts that are the same movement
    by the match rules: neither lost nor unconfirmed, but a person confirms the pair
    (both may have been delivered)."""
    if not lost or not unconfirmed:
        return
    info = sides.details(conn, [r.id for r in lost] + [r.id for r in unconfirmed])

    def item(row: Kept) -> Item:
        extra = info[row.id]
        return Item(
            ref=row.id,
            amount_minor=row.amount_minor,
            at=row.occurred_at,
            reference=normalise_reference(extra.reference),
            counterparty=extra.msisdn if extra.msisdn_kind == "plain" else None,
        )

    result = match(
        [item(r) for r in lost], [item(r) for r in unconfirmed], scope.rules, scope.tolerance
    )
    pairs = [p for p in result.pairs if p.method == "rule"]
    if not pairs:
        return
    out.add_matches("rule", pairs)
    by_id = {r.id: r for r in (*lost, *unconfirmed)}
    paired = {ref for p in pairs for ref in (*p.left, *p.right)}
    lost[:] = [r for r in lost if r.id not in paired]
    unconfirmed[:] = [r for r in unconfirmed if r.id not in paired]
    for pair in pairs:
        statement, callback = by_id[pair.left[0]], by_id[pair.right[0]]
        day = local_day(statement.occurred_at)
        out.count(day, RULE_MATCH, statement.amount_minor)
        out.findings.append(
            Finding(
                key=finding_key(
                    RULE_MATCH, scope.provider, scope.account, statement.receipt, callback.receipt
                ),
                kind=RULE_MATCH,
                day=day,
                detail=(
                    f"statement row {statement.receipt} and callback {callback.receipt} look like "
                    f"one movement (confidence {pair.confidence:.2f}); confirm, and check the "
                    "back office did not post it twice"
                ),
                transaction_id=callback.id,
                receipt=callback.receipt,
                amount_minor=callback.amount_minor,
                currency=callback.currency,
            )
        )


def discrepancies(conn: Connection, scope: Scope, out: Result) -> None:
    """Same identity, sightings that disagree: one finding per transaction."""
    by_txn: dict[int, list[Row[Any]]] = {}
    for row in sides.open_discrepancies(
        conn, scope.provider, scope.account, scope.start_utc, scope.end_utc
    ):
        by_txn.setdefault(row.transaction_id, []).append(row)
    for txn_id, rows in by_txn.items():
        first = rows[0]
        day = scope.day(first.occurred_at)
        parts = [
            f"{r.field}: recorded {r.recorded}, {r.kind or 'a later'} sighting says {r.observed}"
            for r in rows
        ]
        out.count(day, DISCREPANCY, first.amount_minor)
        out.findings.append(
            Finding(
                key=finding_key(
                    DISCREPANCY, scope.provider, scope.account, first.receipt, first.entry
                ),
                kind=DISCREPANCY,
                day=day,
                detail="; ".join(parts),
                transaction_id=txn_id,
                receipt=first.receipt,
                amount_minor=first.amount_minor,
                currency=first.currency,
            )
        )
    out.checked.add(DISCREPANCY)


def orphans(conn: Connection, scope: Scope, out: Result) -> None:
    """Charges matched to their payment and reversals to their original: the ones
    without are findings."""
    for row in sides.orphans(conn, scope.provider, scope.account, scope.start_utc, scope.end_utc):
        day = scope.day(row.occurred_at)
        what = "payment" if row.entry == "charge" else "original"
        detail = (
            f"{row.entry} {row.receipt} refers to {row.related_receipt}, and no such "
            f"{what} is in the ledger"
            if row.related_receipt
            else f"{row.entry} {row.receipt} names no {what} (no Linked Transaction ID)"
        )
        out.count(day, ORPHAN, row.amount_minor)
        out.findings.append(
            Finding(
                key=finding_key(ORPHAN, scope.provider, scope.account, row.receipt, row.entry),
                kind=ORPHAN,
                day=day,
                detail=detail,
                transaction_id=row.id,
                receipt=row.receipt,
                amount_minor=row.amount_minor,
                currency=row.currency,
            )
        )
    out.checked.add(ORPHAN)
