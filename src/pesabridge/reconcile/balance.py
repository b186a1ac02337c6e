"""Balance continuity of a statement: each running balance follows from the previous.

The rows are taken in the order they happened (a portal statement lists the newest
first, so its file order is reversed). A row's balance must equal the previous balance
plus the row's amount (credit) or minus it (debit); a row that is not completed moves no
money. Rows without a balance are carried over. Where a balance does not follow, the
break is reported at that row, with the balance expected and the balance stated.

A single misprinted balance breaks the chain twice (at the row, and again at the next
row, which follows from the right figure); that is recognised and reported once, at the
misprinted row. Finally the totals are checked: opening + credits - debits = closing.

The chain is read from the statement file itself where it is at hand (the ledger keeps
the first sighting's balance: a callback that came first without one leaves it empty),
else from the ledger. It is held in compact arrays: a million rows take about 32 MB.
"""

from __future__ import annotations

import csv
from array import array
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..store.rows import to_minor

_NONE = -(2**63)
"""The balance of a row that states none."""


@dataclass(frozen=True, slots=True)
class Break:
    """Where a statement's balances stop adding up."""

    line: int | None
    """The statement line (``None`` for the totals)."""
    at: datetime | None
    expected_minor: int
    stated_minor: int
    kind: str
    """``row`` (the running balance jumps from here on), ``misprint`` (this row's
    balance alone is wrong), ``totals`` (opening + credits - debits != closing) or
    ``closing`` (the last running balance is not the closing balance)."""

    @property
    def difference_minor(self) -> int:
        return self.stated_minor - self.expected_minor


@dataclass(slots=True)
class Chain:
    """A statement's rows in file order: line, signed amount, balance, time."""

    lines: array[int] = field(default_factory=lambda: array("q"))
    signed: array[int] = field(default_factory=lambda: array("q"))
    balances: array[int] = field(default_factory=lambda: array("q"))
    times: array[float] = field(default_factory=lambda: array("d"))
    unknown: int = 0
    """Rows whose balance is not known (stated by neither the file nor the ledger)."""

    def add(self, line: int, signed: int, balance: int | None, at: datetime | None) -> None:
        self.lines.append(line)
        self.signed.append(signed)
        self.balances.append(_NONE if balance is None else balance)
        self.times.append(at.timestamp() if at is not None else float("nan"))
        self.unknown += balance is None

    def __len__(self) -> int:
        return len(self.lines)

    def order(self) -> Iterable[int]:
        """Row indexes in the order they happened (reversed for a newest-first file)."""
        if len(self) > 1 and self.times[0] > self.times[-1]:
            return range(len(self) - 1, -1, -1)
        return range(len(self))

    def at(self, index: int) -> datetime | None:
        stamp = self.times[index]
        return None if stamp != stamp else datetime.fromtimestamp(stamp, UTC)


def _signed(direction: str, status: str, amount: int) -> int:
    if status != "completed":
        return 0
    return amount if direction == "credit" else -amount


def chain_from_rows(
    rows: Iterable[tuple[Any, ...]], observed: Mapping[int, int] | None = None
) -> Chain:
    """From the ledger: (evidence id, line, direction, amount, balance, status, time)
    tuples in file order (:func:`~.sides.statement_rows`). ``observed`` gives, per
    evidence id, the amount the statement stated where the ledger holds another (the
    row disagreed with an earlier callback)."""
    from .sides import moment

    observed = observed or {}
    chain = Chain()
    lines, signed_of, balances, times = chain.lines, chain.signed, chain.balances, chain.times
    nan = float("nan")
    first = last = None
    unknown = 0
    for evidence_id, line, direction, amount, balance, status, when in rows:
        if observed:
            amount = observed.get(evidence_id, amount)
        lines.append(line)
        signed_of.append(
            0 if status != "completed" else amount if direction == "credit" else -amount
        )
        if balance is None:
            unknown += 1
            balances.append(_NONE)
        else:
            balances.append(balance)
        times.append(nan)
        first = first if first is not None else when
        last = when
    chain.unknown = unknown
    if len(chain) > 1 and first is not None and last is not None:
        times[0], times[-1] = moment(first).timestamp(), moment(last).timestamp()
    return chain


def chain_from_file(path: Path, digits: int = 2) -> Chain:
    """From the statement file itself: a portal CSV read directly (only the columns the
    chain needs, a million rows in a few seconds), anything else through its parser."""
    if path.suffix.lower() != ".xlsx":
        chain = _chain_from_portal_csv(path, digits)
        if chain is not None:
            return chain
    return _chain_from_parser(path)


_CHAIN_COLUMNS = {
    "paid in": "paid",
    "withdrawn": "withdrawn",
    "balance": "balance",
    "transaction status": "status",
    "status": "status",
    "completion time": "time",
    "date": "time",
}


def _chain_from_portal_csv(path: Path, digits: int) -> Chain | None:
    """The M-Pesa portal layout (and its Excel re-saves), or ``None`` for another one.

    Line numbers are counted as the statement parser counts them, so a break's line is
    the line of its evidence in the ledger. Rows the parser would reject are skipped.
    """
    from ..errors import InvalidValue
    from ..formats._text import eat_text_to_utc, money, open_text

    chain = Chain()
    with path.open("rb") as stream:
        text = open_text(stream)
        reader = csv.reader(text)
        columns: dict[str, int] | None = None
        previous = 0
        first_time = last_time = ""
        for row in reader:
            line, previous = previous + 1, reader.line_num
            if columns is None:
                cells = [c.strip().lower() for c in row]
                if cells and cells[0] in ("receipt no.", "receipt no", "receipt"):
                    found = {
                        _CHAIN_COLUMNS[c]: i for i, c in enumerate(cells) if c in _CHAIN_COLUMNS
                    }
                    if not {"paid", "withdrawn", "time"} <= set(found):
                        return None
                    columns = found
                continue
            if not row or not row[0].strip():
                continue
            try:
                paid = _minor(_cell(row, columns, "paid"), digits, money)
                withdrawn = _minor(_cell(row, columns, "withdrawn"), digits, money)
                balance = _minor(_cell(row, columns, "balance"), digits, money)
            except (InvalidValue, ArithmeticError):
                continue
            if paid:
                signed = abs(paid)
            elif withdrawn:
                signed = -abs(withdrawn)
            else:
                continue
            if _cell(row, columns, "status").lower() not in ("", "completed"):
                signed = 0
            when = _cell(row, columns, "time")
            first_time = first_time or when
            last_time = when
            chain.add(line, signed, balance, None)
        text.detach()
    if columns is None:
        return None
    if len(chain) > 1:
        try:
            chain.times[0] = eat_text_to_utc(first_time).timestamp()
            chain.times[-1] = eat_text_to_utc(last_time).timestamp()
        except ValueError:
            pass
    return chain


def _minor(text: str, digits: int, money: Callable[[str, str], Decimal | None]) -> int | None:
    """``"-1,020.50"`` -> ``-102050`` (two digits); odd cells go through ``money``."""
    if not text:
        return None
    plain = text.replace(",", "")
    negative = plain.startswith("-")
    whole, _, fraction = plain.lstrip("-").partition(".")
    if whole.isdigit() and len(fraction) <= digits and (not fraction or fraction.isdigit()):
        scale: int = 10**digits
        value = int(whole) * scale + (int(fraction.ljust(digits, "0")) if fraction else 0)
        return -value if negative else value
    amount = money(text, "amount")
    return None if amount is None else int(Decimal(amount).scaleb(digits))


def _cell(row: list[str], columns: dict[str, int], name: str) -> str:
    index = columns.get(name)
    return row[index].strip() if index is not None and index < len(row) else ""


def _chain_from_parser(path: Path) -> Chain:
    from ..formats.base import Observation
    from ..pipeline import choose_parser

    parser = choose_parser(path, "auto")
    chain = Chain()
    with path.open("rb") as stream:
        for item in parser.parse(stream, path.name):
            if not isinstance(item, Observation) or item.line is None:
                continue
            txn = item.transaction
            currency = txn.currency
            balance = txn.balance_after
            chain.add(
                item.line,
                _signed(txn.direction.value, txn.status.value, to_minor(txn.amount, currency)),
                None if balance is None else to_minor(balance, currency),
                txn.occurred_at,
            )
    return chain


def check_chain(
    chain: Chain, *, opening_minor: int | None, closing_minor: int | None
) -> list[Break]:
    """Breaks in ``chain``, in the order they happened (see the module docstring)."""
    breaks: list[Break] = []
    expected = opening_minor
    suspect: tuple[int, int] | None = None  # index of breaks[-1], the balance it should have
    moved = 0
    signed_of, balance_of = chain.signed, chain.balances
    for index in chain.order():
        signed = signed_of[index]
        moved += signed
        balance = balance_of[index]
        if balance == _NONE:
            if expected is not None:
                expected += signed
            if suspect is not None:
                suspect = (suspect[0], suspect[1] + signed)
            continue
        if expected is None:
            expected = balance
            continue
        want = expected + signed
        if suspect is not None:
            flagged, right = suspect
            suspect = None
            if balance == right + signed and balance != want:
                # the flagged row's balance alone was wrong; the chain goes on from here
                last = breaks[flagged]
                breaks[flagged] = Break(
                    last.line, last.at, last.expected_minor, last.stated_minor, "misprint"
                )
                expected = balance
                continue
        if balance != want:
            breaks.append(Break(chain.lines[index], chain.at(index), want, balance, "row"))
            suspect = (len(breaks) - 1, want)
        expected = balance
    if (
        opening_minor is not None
        and closing_minor is not None
        and opening_minor + moved != closing_minor
    ):
        breaks.append(Break(None, None, opening_minor + moved, closing_minor, "totals"))
    if closing_minor is not None and expected is not None and expected != closing_minor:
        breaks.append(Break(None, None, expected, closing_minor, "closing"))
    return breaks
