"""Any delimited text export (CSV, semicolon, tab) read through a column mapping.

For providers and banks without a parser of their own: the source's ``format_options``
say which column holds the receipt, the time (with its format and zone), the amount (a
signed column, or a credit/debit pair), the reference, the counterparty and so on::

    format: delimited
    format_options:
      provider: equity
      account: "0170299999999"
      currency: KES
      header_contains: Transaction ID
      skip_footer_prefixes: [Total]
      time_format: "%d/%m/%Y %H:%M"
      columns:
        receipt: Transaction ID
        time: Value Date
        credit: Credit
        debit: Debit
        reference: Narrative

Columns are addressed by header name (matched case-insensitively, surrounding spaces
ignored) or by 0-based index. The file is decoded and read as a stream, so memory stays
constant however long it is. Rows that cannot be read are rejected with the file, the
physical line, the column's name as written in the header and the reason; the other rows
still come out. See ``docs/formats/delimited.md``.

This module decodes the file, finds the header row and skips what is not data; the
column layout, the row mapping and the cell values are in :mod:`.delimited_layout`,
:mod:`.delimited_rows` and :mod:`.delimited_values`, the options in
:mod:`.delimited_options`.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any, BinaryIO, ClassVar

from pydantic import (
    BaseModel,
)

from ._text import UTF8_OR_CP1252, open_text
from .base import ParseItem, Reject, StatementHeader
from .delimited_layout import Layout
from .delimited_options import SURROGATE, DelimitedOptions
from .delimited_rows import RowMapper, row_mapper


def _text_stream(stream: BinaryIO, encoding: str) -> io.TextIOWrapper:
    if encoding == "auto":
        return open_text(stream)
    if encoding == "cp1252":
        # The five bytes cp1252 leaves undefined are read as Latin-1: nothing is lost.
        return io.TextIOWrapper(stream, encoding="cp1252", errors=UTF8_OR_CP1252, newline="")
    # Strict UTF-8: a bad byte becomes a lone surrogate, and its row is rejected.
    return io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")


class DelimitedParser:
    """A delimited text file read through a column mapping (see the module docstring)."""

    name: ClassVar[str] = "delimited"
    Options: ClassVar[type[BaseModel]] = DelimitedOptions

    def __init__(self, options: DelimitedOptions) -> None:
        self.options = options

    def sniff(self, head: bytes, filename: str) -> bool:
        """Never: a delimited file means nothing without its column mapping."""
        return False

    def parse(self, stream: BinaryIO, source: str) -> Iterator[ParseItem]:
        """Yield a statement header, then one observation or reject per data row."""
        options = self.options
        text = _text_stream(stream, options.encoding)
        strict_utf8 = options.encoding == "utf-8"
        pending: list[str] = []

        def lines() -> Iterator[str]:
            # Keep what csv consumed, so each row's exact text becomes its evidence.
            for physical in text:
                pending.append(physical)
                yield physical

        dialect: dict[str, Any] = {"delimiter": options.delimiter}
        if options.quotechar is None:
            dialect["quoting"] = csv.QUOTE_NONE
        else:
            dialect["quotechar"] = options.quotechar
        reader = csv.reader(lines(), **dialect)
        footers = tuple(p.strip().casefold() for p in options.skip_footer_prefixes)
        needle = (options.header_contains or "").strip().casefold()
        header_line = options.header_line or (1 + options.skip_lines)
        map_row: RowMapper | None = None
        header_cells: list[str] | None = None
        if not options.header:
            layout = Layout(options, None)
            map_row = row_mapper(options, layout, source)
            yield self._statement_header(source)
        previous = 0
        try:
            while True:
                try:
                    for row in reader:
                        line, previous = previous + 1, reader.line_num
                        raw = (pending[0] if len(pending) == 1 else "".join(pending)).rstrip("\r\n")
                        pending.clear()
                        if line <= options.skip_lines:
                            continue
                        if strict_utf8 and not raw.isascii() and SURROGATE.search(raw):
                            evidence = raw.encode("utf-8", "surrogateescape")
                            byte = SURROGATE.search(raw)
                            assert byte is not None
                            yield Reject(
                                source,
                                line,
                                None,
                                f"byte 0x{ord(byte[0]) - 0xDC00:02x} is not valid UTF-8 "
                                "(encoding: utf-8; try auto or cp1252)",
                                evidence,
                            )
                            continue
                        if map_row is None:
                            if not self._is_header(row, line, needle, header_line):
                                continue
                            header_cells = row
                            layout = Layout(options, row)
                            if layout.missing:
                                for column, reason in layout.missing:
                                    yield Reject(source, line, column, reason, raw.encode())
                                return
                            map_row = row_mapper(options, layout, source)
                            yield self._statement_header(source)
                            continue
                        if not row or (len(row) == 1 and not row[0].strip()):
                            continue  # blank line
                        if footers:
                            first = next((c.strip().casefold() for c in row if c.strip()), "")
                            if first.startswith(footers):
                                continue
                        if row == header_cells:
                            continue  # the header repeated (one per page in some exports)
                        item = map_row(row, line, raw, raw.encode("utf-8", "surrogateescape"))
                        if item is not None:
                            yield item
                    break
                except csv.Error as exc:
                    raw = "".join(pending).rstrip("\r\n")
                    pending.clear()
                    yield Reject(
                        source,
                        previous + 1,
                        None,
                        f"unreadable {options.delimiter!r}-delimited text: {exc}",
                        raw.encode("utf-8", "surrogateescape"),
                    )
                    previous = reader.line_num
            if map_row is None:
                if options.header_contains is not None:
                    reason = f"no row has a cell {options.header_contains!r}; header not found"
                else:
                    reason = f"the file ends before its header row (line {header_line})"
                yield Reject(source, None, None, reason)
        finally:
            text.detach()  # the caller owns the byte stream

    def _is_header(self, row: list[str], line: int, needle: str, header_line: int) -> bool:
        if not "".join(row).strip():
            return False  # a blank line is never the header
        if needle:
            return any(c.strip().lstrip("\ufeff").casefold() == needle for c in row)
        return line >= header_line

    def _statement_header(self, source: str) -> StatementHeader:
        return StatementHeader(
            source=source,
            provider=self.options.provider,
            account=self.options.account,
            currency=self.options.currency,
        )
