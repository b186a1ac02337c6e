"""CSV for back offices that import spreadsheets: a statement (header and rows) or one row.

Columns are chosen by name from the canonical fields (plus a few derived ones), in the
order given, each with an optional header label. Amounts are exact decimal strings
(``1500.00``; ``1500,00`` with ``decimal_point: ","``), never floats. Text cells that a
spreadsheet would run as a formula (starting with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return) are prefixed with ``'``; amount columns are written by pesabridge from
``Decimal`` and are never prefixed, so ``signed_amount`` stays a number.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from ..model import Transaction
from .base import MessageContext, Statement
from .options import problem, validate_options
from .statements import signed

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cp(txn: Transaction, name: str) -> str | None:
    return getattr(txn.counterparty, name) if txn.counterparty else None


_Getter = Callable[[Transaction, Any], "str | Decimal | None"]

COLUMNS: dict[str, _Getter] = {
    "provider": lambda t, z: t.provider,
    "account": lambda t, z: t.account,
    "receipt": lambda t, z: t.receipt,
    "entry": lambda t, z: t.entry.value,
    "direction": lambda t, z: t.direction.value,
    "amount": lambda t, z: t.amount,
    "currency": lambda t, z: t.currency,
    "occurred_at": lambda t, z: t.to_dict()["occurred_at"],
    "counterparty.msisdn": lambda t, z: _cp(t, "msisdn"),
    "counterparty.msisdn_kind": lambda t, z: (
        t.counterparty.msisdn_kind.value if t.counterparty and t.counterparty.msisdn_kind else None
    ),
    "counterparty.name": lambda t, z: _cp(t, "name"),
    "reference": lambda t, z: t.reference,
    "balance_after": lambda t, z: t.balance_after,
    "status": lambda t, z: t.status.value,
    "related_receipt": lambda t, z: t.related_receipt,
    # derived
    "signed_amount": lambda t, z: signed(t),
    "occurred_at_local": lambda t, z: (
        t.occurred_at.astimezone(z).isoformat() if t.occurred_at else None
    ),
    "local_date": lambda t, z: (
        t.occurred_at.astimezone(z).date().isoformat() if t.occurred_at else None
    ),
    "local_time": lambda t, z: (
        t.occurred_at.astimezone(z).strftime("%H:%M:%S") if t.occurred_at else None
    ),
}
"""Every column name: the canonical fields (counterparty ones dotted) and derived ones."""

DERIVED_COLUMNS = ("signed_amount", "occurred_at_local", "local_date", "local_time")
DEFAULT_COLUMNS = [name for name in COLUMNS if name not in DERIVED_COLUMNS]
"""The canonical fields, in the ``parse`` order."""

_TERMINATORS = {"crlf": "\r\n", "lf": "\n", "\r\n": "\r\n", "\n": "\n"}


class CsvOptions(BaseModel):
    """``encoder_options`` of the ``csv`` encoder."""

    model_config = ConfigDict(extra="forbid")

    columns: list[str] = DEFAULT_COLUMNS
    """Column names, in order (a comma-separated string is accepted too)."""
    labels: dict[str, str] = {}
    """Header label by column name; the name itself when not given."""
    delimiter: str = ","
    decimal_point: str = "."
    header: bool = True
    line_terminator: str = Field("crlf", validate_default=True)
    """crlf (RFC 4180, the default) or lf."""
    zone: str = "Africa/Nairobi"
    """Time zone of the derived local columns."""

    @field_validator("columns", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("columns")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        unknown = [name for name in value if name not in COLUMNS]
        if unknown:
            raise ValueError(f"unknown columns {', '.join(unknown)}; known: {', '.join(COLUMNS)}")
        if not value:
            raise ValueError("at least one column")
        return value

    @field_validator("delimiter", mode="before")
    @classmethod
    def _delimiter(cls, value: Any) -> Any:
        return {"tab": "\t", "\\t": "\t", "semicolon": ";", "comma": ",", "pipe": "|"}.get(
            value, value
        )

    @field_validator("delimiter")
    @classmethod
    def _one_char(cls, value: str) -> str:
        if len(value) != 1 or value in "\"'\r\n":
            raise ValueError("must be one character other than a quote or a line end")
        return value

    @field_validator("decimal_point")
    @classmethod
    def _point(cls, value: str) -> str:
        if value not in (".", ","):
            raise ValueError('must be "." or ","')
        return value

    @field_validator("line_terminator")
    @classmethod
    def _terminator(cls, value: str) -> str:
        if value.lower() not in _TERMINATORS:
            raise ValueError("must be crlf or lf")
        return _TERMINATORS[value.lower()]

    @model_validator(mode="after")
    def _distinct(self) -> CsvOptions:
        if self.delimiter == self.decimal_point:
            raise ValueError("delimiter and decimal_point must differ")
        unknown = [name for name in self.labels if name not in self.columns]
        if unknown:
            raise ValueError(f"labels for columns not chosen: {', '.join(unknown)}")
        return self


def neutralise(value: str) -> str:
    """A text cell a spreadsheet will show as text, never run as a formula."""
    if value and value[0] in FORMULA_STARTS:
        return "'" + value
    return value


class CsvEncoder:
    """A statement as CSV (header and rows), or one transaction as one row."""

    name: ClassVar[str] = "csv"
    media_type: ClassVar[str] = "text/csv"

    def __init__(self, **options: Any) -> None:
        self.options = validate_options(CsvOptions, options)
        try:
            self.zone = ZoneInfo(self.options.zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise problem(f"zone: {self.options.zone!r} is not a known time zone") from None
        self._getters = [COLUMNS[name] for name in self.options.columns]

    def _writer(self, buffer: io.StringIO) -> Any:
        return csv.writer(
            buffer,
            delimiter=self.options.delimiter,
            lineterminator=self.options.line_terminator,
            quoting=csv.QUOTE_MINIMAL,
        )

    def _cells(self, txn: Transaction) -> list[str]:
        point = self.options.decimal_point
        cells: list[str] = []
        for getter in self._getters:
            value = getter(txn, self.zone)
            if value is None:
                cells.append("")
            elif isinstance(value, Decimal):
                text = f"{value:f}"
                cells.append(text if point == "." else text.replace(".", point))
            else:
                cells.append(neutralise(value))
        return cells

    def header_row(self) -> bytes:
        """The header line (labels, or column names)."""
        buffer = io.StringIO()
        labels = self.options.labels
        self._writer(buffer).writerow(
            [neutralise(labels.get(name, name)) for name in self.options.columns]
        )
        return buffer.getvalue().encode()

    def encode(self, txn: Transaction, context: MessageContext) -> bytes:
        """One row, without a header."""
        buffer = io.StringIO()
        self._writer(buffer).writerow(self._cells(txn))
        return buffer.getvalue().encode()

    def encode_batch(self, transactions: Iterable[Transaction]) -> bytes:
        """The header (unless ``header: false``) and one row per transaction."""
        buffer = io.StringIO()
        writer = self._writer(buffer)
        if self.options.header:
            labels = self.options.labels
            writer.writerow([neutralise(labels.get(name, name)) for name in self.options.columns])
        for txn in transactions:
            writer.writerow(self._cells(txn))
        return buffer.getvalue().encode()

    def encode_statement(self, statement: Statement) -> bytes:
        """The statement's entries as :meth:`encode_batch` writes them."""
        return self.encode_batch(statement.entries)
