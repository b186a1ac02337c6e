"""An M-Pesa statement's preamble and column header: what comes before the first row.

:class:`StatementReader` reads the preamble's labelled cells (``Account Holder:``,
``Short Code:``, ``Time Period:``, balances) until it meets the column header row, which
it turns into the statement header and the row mapper for the rows below. The CSV and
XLSX readers share it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal

from ..errors import InvalidValue
from ..model import quantize
from ._text import eat_text_to_utc, money
from .base import ParseItem, Reject, StatementHeader
from .mpesa_statement_columns import COLUMNS, REQUIRED, TIME
from .mpesa_statement_rows import PROVIDER, RowMapper, row_mapper

DEFAULT_CURRENCY = "KES"

FILE_SHORT_CODE = re.compile(r"ORG_(\d+)_")


def _preamble_amount(text: str, currency: str) -> Decimal | None:
    """A preamble balance, or ``None``: a bad total must not reject good rows."""
    try:
        value = money(text, "balance")
        return None if value is None else quantize(value, currency)
    except InvalidValue:
        return None


class StatementReader:
    """State machine shared by the CSV and XLSX readers: preamble, header row, rows.

    Feed rows to :meth:`preamble_row` until :attr:`map_row` is set, then call
    :attr:`map_row` for every further row; call :meth:`finish` at the end.
    """

    def __init__(self, source: str) -> None:
        self.source = source
        self.map_row: RowMapper | None = None
        self.fatal = False
        self.holder: str | None = None
        self.organization: str | None = None
        self.short_code: str | None = None
        self.currency: str | None = None
        self.period: list[str] = []
        self.balances: dict[str, str] = {}

    def preamble_row(self, row: Sequence[str], line: int, raw: str) -> ParseItem | None:
        """Read one row before the column header; returns the header or a fatal reject."""
        cells = [c.strip() for c in row]
        while cells and not cells[-1]:
            cells.pop()
        if not cells:
            return None
        first = cells[0].lower()
        if first in ("receipt no.", "receipt no", "receipt") and any(
            COLUMNS.get(c.lower()) == TIME for c in cells
        ):
            return self._header(cells, line, raw)
        if first == "time period:":
            self.period = [c for c in cells[1:] if c and c.lower() not in ("from", "to")]
            return None
        for label, value in zip(cells, [*cells[1:], ""], strict=True):
            key = label.lower()
            if key == "account holder:":
                self.holder = value or None
            elif key == "organization:":
                self.organization = value or None
            elif key == "short code:":
                self.short_code = value or None
            elif key == "currency:":
                self.currency = value.upper() or None
            elif key in ("opening balance:", "closing balance:"):
                self.balances[key] = value
        return None

    def finish(self) -> Reject | None:
        """A reject for a file in which no column header row was ever found."""
        if self.map_row is None and not self.fatal:
            return Reject(
                self.source,
                None,
                None,
                "no header row with a 'Receipt No.' cell; not an M-Pesa statement",
            )
        return None

    def _header(self, cells: list[str], line: int, raw: str) -> ParseItem:
        columns: dict[int, int] = {}
        names: dict[int, str] = {}
        for index, cell in enumerate(cells):
            column = COLUMNS.get(cell.lower())
            if column is not None and column not in columns:
                columns[column] = index
                names[column] = cell
        missing = [label for column, label in REQUIRED.items() if column not in columns]
        if missing:
            self.fatal = True
            return Reject(
                self.source,
                line,
                None,
                f"header row has no {', '.join(missing)} column",
                raw.encode(),
            )
        account = self.short_code
        if account is None:
            match = FILE_SHORT_CODE.search(self.source)
            account = match[1] if match else None
        currency = self.currency or DEFAULT_CURRENCY
        legacy = cells[0].lower() == "receipt"
        self.map_row = row_mapper(
            self.source,
            account,
            currency,
            columns,
            names,
            len(cells),
            "yyyy-MM-dd" if legacy else "dd-MM-yyyy",
        )
        start = end = None
        try:
            if len(self.period) >= 2:
                start, end = eat_text_to_utc(self.period[0]), eat_text_to_utc(self.period[1])
        except ValueError:
            pass
        return StatementHeader(
            source=self.source,
            provider=PROVIDER,
            account=account,
            holder=self.holder or self.organization,
            period_start=start,
            period_end=end,
            opening_balance=_preamble_amount(self.balances.get("opening balance:", ""), currency),
            closing_balance=_preamble_amount(self.balances.get("closing balance:", ""), currency),
            currency=currency,
        )
