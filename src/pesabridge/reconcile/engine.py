"""One reconciliation of an account's period: statement against callbacks, balances,
deliveries against the back office's record.

Everything here reads through :mod:`.sides` (a handful of set-based queries) and walks
the rows once; what it finds comes back as a tally per day and outcome plus a list of
:class:`~.records.Finding`. Writing (backfill, persistence) is the service's job.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta, tzinfo
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Row

from ..model.currency import minor_units
from ..store.rows import idempotency_key
from . import sides
from .backoffice import Posting
from .balance import Break, chain_from_file, chain_from_rows, check_chain
from .matching import Item, Matching, Pair, match, normalise_reference
from .periods import Coverage, covered, day_of, raw_day_of
from .persist import Tally
from .records import (
    AWAITING_STATEMENT,
    BACKFILLED,
    BALANCE_BREAK,
    DISCREPANCY,
    DUPLICATE_CALLBACK,
    MATCHED,
    NOT_POSTED,
    ORPHAN,
    POSTED,
    REPAIRED,
    RULE_MATCH,
    STATEMENT_ONLY,
    UNCONFIRMED,
    UNDELIVERED,
    UNEXPECTED_POSTING,
    Finding,
    MatchCount,
)
from .settings import AccountSettings, MatchRules
from .sides import moment


def finding_key(*parts: object) -> str:
    """A finding's stable name: sha256 over what and where."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


@dataclass(slots=True)
class Scope:
    """What one run looks at."""

    provider: str
    account: str
    start: date
    end: date
    zone: tzinfo
    start_utc: datetime
    end_utc: datetime
    currency: str
    settings: AccountSettings
    rules: MatchRules
    receives_callbacks: bool

    def day(self, moment: datetime | None) -> date:
        """The local day of ``moment``, kept inside the period."""
        if moment is None:
            return self.end
        local = moment.astimezone(self.zone).date()
        return min(max(local, self.start), self.end)

    def money(self, minor: int | None) -> str:
        if minor is None:
            return "-"
        value = Decimal(minor).scaleb(-minor_units(self.currency))
        return f"{value:,} {self.currency}"

    @property
    def tolerance(self) -> int:
        return int(self.rules.amount_tolerance.scaleb(minor_units(self.currency)))


@dataclass(slots=True)
class Result:
    tally: Tally = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    backfill: list[int] = field(default_factory=list)
    matches: list[MatchCount] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: set[str] = field(default_factory=set)
    """Exception kinds this run evaluated (open ones of these kinds it did not find
    again are cleared)."""

    def count(self, day: date, outcome: str, amount_minor: int) -> None:
        slot = self.tally.get((day, outcome))
        if slot is None:
            self.tally[(day, outcome)] = [1, amount_minor]
        else:
            slot[0] += 1
            slot[1] += amount_minor

    def uncount(self, day: date, outcome: str, amount_minor: int) -> None:
        slot = self.tally[(day, outcome)]
        slot[0] -= 1
        slot[1] -= amount_minor
        if slot[0] == 0:
            del self.tally[(day, outcome)]

    def add_matches(self, method: str, pairs: Sequence[Pair]) -> None:
        if pairs:
            mean = sum(p.confidence for p in pairs) / len(pairs)
            self.matches.append(MatchCount(method, len(pairs), round(mean, 3)))


# -- statement against callbacks -----------------------------------------------------


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
        elif files:
            if receives and entry in expected_by_callback and status == "completed":
                lost.append(Kept(txn_id, receipt, entry, amount, currency, moment(when), 0))
                outcome = ""
            else:
                outcome = STATEMENT_ONLY
        elif callbacks:
            at = moment(when)
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


# -- balances ------------------------------------------------------------------------


def balances(
    conn: Connection,
    scope: Scope,
    coverage: Sequence[Coverage],
    out: Result,
    at_hand: Mapping[int, Path] | None = None,
) -> None:
    """Balance continuity of every statement file of the period; ``at_hand`` maps file
    ids to the statement files themselves, read instead of the ledger."""
    digits = minor_units(scope.currency)
    partial = False
    for file in coverage:
        observed: dict[int, int] = {}
        for row in sides.observed_amounts(conn, file.file_id):
            try:
                observed[row.evidence_id] = int(Decimal(row.observed).scaleb(digits))
            except (InvalidOperation, ValueError):
                continue
        # the ledger first (set-based); the file itself where the ledger lacks balances
        chain = chain_from_rows(sides.statement_rows(conn, file.file_id), observed)
        path = (at_hand or {}).get(file.file_id)
        if chain.unknown and path is not None and path.is_file():
            chain = chain_from_file(path, digits)
        if chain.unknown:
            partial = True
            out.notes.append(
                f"{file.name}: {chain.unknown} row(s) have no balance in the ledger (their "
                "callback came first, without one), so their running balances were not "
                "checked; pass the file with --statement to check every row"
            )
        found = check_chain(
            chain, opening_minor=file.opening_minor, closing_minor=file.closing_minor
        )
        located = sides.receipts_at(conn, file.file_id, [b.line for b in found if b.line])
        for item in found:
            receipt, at = located.get(item.line or 0, (None, None))
            if at is not None and item.at is None:
                item = replace(item, at=at)
            _break_finding(scope, file, item, receipt, out)
    if not partial:
        # a partial check (balances missing) must not clear what a full one found
        out.checked.add(BALANCE_BREAK)


def _break_finding(
    scope: Scope, file: Coverage, found: Break, receipt: str | None, out: Result
) -> None:
    day = scope.day(found.at if found.at is not None else file.end - timedelta(seconds=1))
    expected, stated = scope.money(found.expected_minor), scope.money(found.stated_minor)
    where = f"{file.name} line {found.line} ({receipt or '?'})"
    if found.kind == "totals":
        detail = (
            f"{file.name}: opening + credits - debits = {expected}, "
            f"but the closing balance is {stated}"
        )
    elif found.kind == "closing":
        detail = (
            f"{file.name}: the last running balance is {expected}, the closing balance {stated}"
        )
    elif found.kind == "misprint":
        detail = (
            f"{where}: balance {stated}, expected {expected}; the next row follows from the "
            "expected figure (a misprinted balance)"
        )
    else:
        detail = (
            f"{where}: balance {stated}, expected {expected} from the previous row; the "
            f"chain breaks here (a missing or altered row of "
            f"{scope.money(abs(found.difference_minor))}?)"
        )
    out.count(day, BALANCE_BREAK, abs(found.difference_minor))
    out.findings.append(
        Finding(
            key=finding_key(BALANCE_BREAK, file.file_id, found.kind, found.line),
            kind=BALANCE_BREAK,
            day=day,
            detail=detail,
            receipt=receipt,
            file_id=file.file_id,
            line=found.line,
            amount_minor=abs(found.difference_minor),
            currency=scope.currency,
        )
    )


# -- deliveries against the back office ------------------------------------------------


def backoffice(
    conn: Connection,
    scope: Scope,
    sink: str,
    postings: Sequence[Posting],
    source: str,
    out: Result,
) -> None:
    """What was delivered to ``sink`` against what the back office says it posted."""
    rows = sides.sink_deliveries(
        conn, scope.provider, scope.account, scope.start_utc, scope.end_utc, sink
    )
    delivered = []
    for row in rows:
        if row.state == "delivered":
            delivered.append(row)
        else:
            out.count(scope.day(row.occurred_at), UNDELIVERED, row.amount_minor)
    pairs: list[Pair] = []
    free = dict(enumerate(postings))
    # the back office's document id or our idempotency key: as good as a receipt
    by_document = {p.document: i for i, p in free.items() if p.document}
    by_key = {p.key: i for i, p in free.items() if p.key}
    left: list[Item] = []
    for index, row in enumerate(delivered):
        key = idempotency_key((row.provider, row.account, row.receipt, row.entry), sink)
        hit = by_key.get(key)
        if hit is None and row.document_id:
            hit = by_document.get(row.document_id)
        if hit is not None and hit in free:
            del free[hit]
            pairs.append(Pair((index,), (hit,), "key", 1.0))
            continue
        day = scope.day(row.occurred_at)
        reference = normalise_reference(row.reference)
        left.append(
            Item(
                ref=index,
                amount_minor=row.amount_minor,
                at=row.occurred_at,
                receipt=row.receipt,
                reference=reference,
                counterparty=row.msisdn if row.msisdn_kind == "plain" else None,
                group=f"{day}/{row.entry}",
                slots=(f"r:{row.receipt}", *((f"f:{reference}",) if reference else ())),
            )
        )
    right = [_posting_item(i, p, scope) for i, p in free.items()]
    result: Matching = match(left, right, scope.rules, scope.tolerance)
    pairs.extend(result.pairs)
    for method in ("key", "receipt", "rule", "group"):
        out.add_matches(f"back office: {method}", [p for p in pairs if p.method == method])
    for pair in pairs:
        for index in pair.left:
            row = delivered[index]
            out.count(scope.day(row.occurred_at), POSTED, row.amount_minor)
        if len(pair.left) == 1 and len(pair.right) == 1:
            row, posting = delivered[pair.left[0]], postings[pair.right[0]]
            if abs(row.amount_minor - posting.amount_minor) > scope.tolerance:
                _posted_differently(scope, sink, row, posting, source, out)
    for item in result.left_over:
        row = delivered[item.ref]
        day = scope.day(row.occurred_at)
        out.count(day, NOT_POSTED, row.amount_minor)
        out.findings.append(
            Finding(
                key=finding_key(
                    NOT_POSTED, sink, row.provider, row.account, row.receipt, row.entry
                ),
                kind=NOT_POSTED,
                day=day,
                detail=(
                    f"delivered to {sink} (document {row.document_id or '-'}), but absent from "
                    f"the back office's record ({source}); replay it with "
                    f"`pesabridge replay --receipt {row.receipt} --sink {sink}`"
                ),
                transaction_id=row.id,
                receipt=row.receipt,
                sink=sink,
                amount_minor=row.amount_minor,
                currency=row.currency,
            )
        )
    for item in result.right_over:
        posting = postings[item.ref]
        day = scope.day(posting.at)
        out.count(day, UNEXPECTED_POSTING, posting.amount_minor)
        what = posting.document or posting.receipt or posting.reference or f"line {posting.line}"
        out.findings.append(
            Finding(
                key=finding_key(
                    UNEXPECTED_POSTING, sink, scope.account, what, posting.amount_minor
                ),
                kind=UNEXPECTED_POSTING,
                day=day,
                detail=(
                    f"{source} line {posting.line} ({what}, {scope.money(posting.amount_minor)}) "
                    f"matches nothing delivered to {sink}: keyed by hand, or posted twice?"
                ),
                receipt=posting.receipt,
                sink=sink,
                line=posting.line,
                amount_minor=posting.amount_minor,
                currency=scope.currency,
            )
        )
    out.checked.update((NOT_POSTED, UNEXPECTED_POSTING))


def _posted_differently(
    scope: Scope, sink: str, row: Any, posting: Posting, source: str, out: Result
) -> None:
    day = scope.day(row.occurred_at)
    out.count(day, DISCREPANCY, row.amount_minor)
    out.findings.append(
        Finding(
            key=finding_key(DISCREPANCY, sink, row.provider, row.account, row.receipt, row.entry),
            kind=DISCREPANCY,
            day=day,
            detail=(
                f"delivered to {sink} as {scope.money(row.amount_minor)}, but the back "
                f"office's record ({source} line {posting.line}) says "
                f"{scope.money(posting.amount_minor)}"
            ),
            transaction_id=row.id,
            receipt=row.receipt,
            sink=sink,
            amount_minor=row.amount_minor,
            currency=row.currency,
        )
    )


def _posting_item(index: int, posting: Posting, scope: Scope) -> Item:
    reference = normalise_reference(posting.reference)
    group = f"r:{posting.receipt}" if posting.receipt else f"f:{reference}" if reference else None
    slots: tuple[str, ...] = ()
    if posting.at is not None:
        day = scope.day(posting.at)
        slots = (f"{day}/{posting.entry}" if posting.entry else f"{day}/",)
    plain = posting.counterparty
    return Item(
        ref=index,
        amount_minor=posting.amount_minor,
        at=posting.at,
        receipt=posting.receipt,
        reference=reference,
        counterparty=plain if plain and plain.lstrip("+").isdigit() else None,
        group=group,
        slots=slots,
    )


def utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC)
