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

from array import array
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
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


def chain_from_rows(rows: Iterable[Any], observed: Mapping[int, int] | None = None) -> Chain:
    """From the ledger: rows with ``id`` (evidence), ``line``, ``direction``,
    ``amount_minor``, ``balance_after_minor``, ``status`` and ``occurred_at``.
    ``observed`` gives, per evidence id, the amount the statement stated where the
    ledger holds another (the row disagreed with an earlier callback)."""
    observed = observed or {}
    chain = Chain()
    for row in rows:
        amount = observed.get(row.id, row.amount_minor)
        chain.add(
            row.line,
            _signed(row.direction, row.status, amount),
            row.balance_after_minor,
            row.occurred_at,
        )
    return chain


def chain_from_file(path: Path, fmt: str = "auto") -> Chain:
    """From the statement file itself, read by its parser (streamed)."""
    from ..formats.base import Observation
    from ..pipeline import choose_parser

    parser = choose_parser(path, fmt)
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
