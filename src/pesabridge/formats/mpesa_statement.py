"""M-Pesa business-portal statements (CSV and XLSX) into canonical transactions.

Layouts read (the header row is found by content, never by a fixed skip count):

* the org portal (G2) export: preamble rows (``Account Holder:``, ``Short Code:``,
  ``Time Period:``, balances), then ``Receipt No.,Completion Time,...,A/C No.`` with an
  optional trailing ``Currency`` column; times ``dd-MM-yyyy HH:mm:ss`` EAT;
* the same file re-saved by Excel (``dd/MM/yyyy HH:mm[:ss]``, bare numbers, cp1252);
* the legacy M-PESA 1G layout: ``Receipt,Date,Details,Status,Withdrawn,Paid In,...,
  Transaction Party Details`` with ``yyyy-MM-dd HH:mm:ss`` EAT dates.

Mapping rules are those of ``shared/samples/README.md`` and ``docs/formats/mpesa-statement.md``.

This module sniffs and reads the file (CSV here, XLSX in :mod:`.mpesa_statement_xlsx`);
the preamble and header row are read in :mod:`.mpesa_statement_preamble`, the column
names in :mod:`.mpesa_statement_columns`, the rows in :mod:`.mpesa_statement_rows`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from typing import BinaryIO, ClassVar

from ._text import decode_head, open_text, peek
from .base import ParseItem, Reject
from .mpesa_statement_preamble import FILE_SHORT_CODE, StatementReader


def _parse_csv(stream: BinaryIO, source: str) -> Iterator[ParseItem]:
    text = open_text(stream)
    pending: list[str] = []

    def lines() -> Iterator[str]:
        # Keep what csv consumed, so each row's exact text becomes its evidence.
        for physical in text:
            pending.append(physical)
            yield physical

    reader = csv.reader(lines())
    state = StatementReader(source)
    map_row = None
    previous = 0
    try:
        while True:
            try:
                for row in reader:
                    line, previous = previous + 1, reader.line_num
                    raw = (pending[0] if len(pending) == 1 else "".join(pending)).rstrip("\r\n")
                    pending.clear()
                    if map_row is not None:
                        item = map_row(row, line, raw)
                        if item is not None:
                            yield item
                        continue
                    header_item = state.preamble_row(row, line, raw)
                    if header_item is not None:
                        yield header_item
                    if state.fatal:
                        return
                    map_row = state.map_row
                break
            except csv.Error as exc:
                raw = "".join(pending).rstrip("\r\n")
                pending.clear()
                yield Reject(source, previous + 1, None, f"unreadable CSV: {exc}", raw.encode())
                previous = reader.line_num
        end = state.finish()
        if end is not None:
            yield end
    finally:
        text.detach()  # the caller owns the byte stream


class MpesaStatementParser:
    """M-Pesa business-portal statement, CSV or XLSX (see the module docstring)."""

    name: ClassVar[str] = "mpesa-statement"

    def sniff(self, head: bytes, filename: str) -> bool:
        """An XLSX with a statement's name, or text with a statement's header or preamble."""
        lowered = filename.lower()
        if head.startswith(b"PK\x03\x04"):
            return lowered.endswith(".xlsx") and (
                FILE_SHORT_CODE.search(filename) is not None or "statement" in lowered
            )
        text = decode_head(head)
        return "Receipt No.," in text or (
            "Receipt,Date,Details" in text or ("Short Code:" in text and "Account Holder:" in text)
        )

    def parse(self, stream: BinaryIO, source: str) -> Iterator[ParseItem]:
        """Yield the statement header, then one observation or reject per row."""
        head, stream = peek(stream, 8)
        if head.startswith(b"PK\x03\x04"):
            from .mpesa_statement_xlsx import parse_xlsx  # openpyxl is slow to import

            yield from parse_xlsx(stream, source)
        elif head.startswith(b"\xd0\xcf\x11\xe0"):
            yield Reject(
                source, None, None, "an Excel 97-2003 (.xls) workbook; save it as .xlsx or CSV"
            )
        else:
            yield from _parse_csv(stream, source)
