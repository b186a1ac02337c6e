"""The XLSX side of :mod:`pesabridge.formats.mpesa_statement`.

Spreadsheet cells are typed; each is turned into the text the portal's CSV would hold
for it, so both files go through one row mapper and yield identical transactions:

* numbers: integers as digits (a short code or A/C No. typed as ``850060`` stays
  ``"850060"``, never ``"850060.0"``), other floats via ``repr`` (the shortest text that
  reads back as the same float), so amounts become ``Decimal`` without float arithmetic;
* datetimes: naive East Africa Time, written as ``dd-MM-yyyy HH:mm:ss``.
"""

from __future__ import annotations

import csv
import io
import zipfile
from collections.abc import Iterable, Iterator
from datetime import date, datetime, time
from typing import Any, BinaryIO

import openpyxl
from openpyxl.utils.exceptions import InvalidFileException
from openpyxl.worksheet._read_only import ReadOnlyWorksheet

from ._text import eat_naive_to_text
from .base import ParseItem, Reject
from .mpesa_statement_preamble import StatementReader

_HEADER_FIRST_CELLS = ("receipt no.", "receipt no", "receipt")
_SNIFF_ROWS = 60
# Excel shows (and keeps) 15 significant digits; a longer repr is float noise from a
# formula such as 19201.649999999998, which the sheet itself displays as 19201.65.
_EXCEL_DIGITS = 15


def cell_text(value: Any) -> str:
    """A typed spreadsheet value as the text a CSV export would carry."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        text = repr(value)
        if sum(ch.isdigit() for ch in text.partition("e")[0]) > _EXCEL_DIGITS:
            text = format(value, f".{_EXCEL_DIGITS}g")
        return text
    if isinstance(value, datetime):
        return eat_naive_to_text(value.replace(tzinfo=None))
    if isinstance(value, date):
        return value.strftime("%d-%m-%Y 00:00:00")
    if isinstance(value, time):
        return value.strftime("%H:%M:%S")
    return str(value)


def _first_cell(row: Iterable[Any]) -> str:
    for value in row:
        return cell_text(value).strip().lower()
    return ""


def _statement_sheet(workbook: Any) -> Any:
    """The first sheet with a ``Receipt No.`` header row near its top (else the first)."""
    sheets: list[Any] = [ws for ws in workbook.worksheets if isinstance(ws, ReadOnlyWorksheet)]
    for sheet in sheets:
        sheet.reset_dimensions()  # a stale <dimension> would truncate rows
        for row in sheet.iter_rows(max_row=_SNIFF_ROWS, values_only=True):
            if _first_cell(row) in _HEADER_FIRST_CELLS:
                return sheet
    return sheets[0]


def parse_xlsx(stream: BinaryIO, source: str) -> Iterator[ParseItem]:
    """Rows of the statement sheet through :class:`StatementReader`; line = sheet row."""
    if not stream.seekable():
        stream = io.BytesIO(stream.read())  # zip needs random access
    try:
        workbook = openpyxl.load_workbook(stream, read_only=True, data_only=True)
    except (zipfile.BadZipFile, InvalidFileException, KeyError, OSError, ValueError) as exc:
        yield Reject(source, None, None, f"not a readable XLSX workbook: {exc}")
        return
    try:
        if not workbook.worksheets:
            yield Reject(source, None, None, "the workbook has no worksheet")
            return
        sheet = _statement_sheet(workbook)
        state = StatementReader(source)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="")
        for line, values in enumerate(sheet.iter_rows(values_only=True), start=1):
            cells = [cell_text(v) for v in values]
            buffer.seek(0)
            buffer.truncate()
            writer.writerow(cells)
            raw = buffer.getvalue()
            item: ParseItem | None
            if state.map_row is not None:
                item = state.map_row(cells, line, raw)
            else:
                item = state.preamble_row(cells, line, raw)
            if item is not None:
                yield item
            if state.fatal:
                return
        end = state.finish()
        if end is not None:
            yield end
    finally:
        workbook.close()
