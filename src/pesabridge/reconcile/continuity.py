"""Balance continuity of the period's statement files, as findings (the chain itself is
checked by :mod:`.balance`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path

from sqlalchemy import Connection

from ..model.currency import minor_units
from . import sides
from .balance import Break, chain_from_file, chain_from_rows, check_chain
from .periods import Coverage
from .records import BALANCE_BREAK, Finding
from .scope import Result, Scope, finding_key


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
