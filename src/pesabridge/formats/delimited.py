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
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any, BinaryIO, ClassVar

from pydantic import (
    BaseModel,
)

from ..errors import InvalidValue
from ..model import CURRENCIES, Counterparty, Direction, Entry, Status, Transaction
from ._text import UTF8_OR_CP1252, money, open_text
from .base import Observation, ParseItem, Reject, StatementHeader
from .delimited_options import (
    DEFAULT_DIRECTIONS,
    DEFAULT_STATUSES,
    ENTRY_NAMES,
    SURROGATE,
    TIME_CACHE_LIMIT,
    DelimitedOptions,
    lowered,
    resolve_timezone,
)

Cell = Callable[[list[str]], str]


class _Layout:
    """Column positions and their display names, fixed once the header is known."""

    def __init__(self, options: DelimitedOptions, header: list[str] | None) -> None:
        self.missing: list[tuple[str, str]] = []
        self.width = 0
        positions: dict[str, int] = {}
        if header is not None:
            for index, cell in enumerate(header):
                positions.setdefault(cell.strip().lstrip("\ufeff").casefold(), index)
            self.width = len(header)
        self.header = header
        self.positions: dict[str, list[int]] = {}
        self.names: dict[str, str] = {}
        for key, refs in options.columns.references().items():
            indexes: list[int] = []
            labels: list[str] = []
            for ref in refs:
                if isinstance(ref, int):
                    if header is not None and ref >= len(header):
                        self.missing.append(
                            (f"column {ref}", f"the header row has only {len(header)} columns")
                        )
                        continue
                    indexes.append(ref)
                    labels.append(
                        header[ref].strip() if header is not None else f"{key} (column {ref})"
                    )
                else:
                    found = positions.get(ref.strip().casefold())
                    if found is None or header is None:
                        self.missing.append((ref, "no such column in the header row"))
                        continue
                    indexes.append(found)
                    labels.append(header[found].strip())
            self.positions[key] = indexes
            self.names[key] = " + ".join(labels)
            self.width = max([self.width, *(i + 1 for i in indexes)])

    def cell(self, key: str) -> Cell | None:
        """A function reading the field's text from a padded row (joined parts with a space)."""
        indexes = self.positions.get(key)
        if not indexes:
            return None
        if len(indexes) == 1:
            index = indexes[0]
            return lambda row: row[index]
        return lambda row: " ".join(p for i in indexes if (p := row[i].strip()))


def _blank(row: list[str]) -> str:
    return ""


def _time_reader(time_format: str | None, zone: tzinfo) -> Callable[[str], datetime]:
    """Text to aware UTC: the pattern's own offset if it has one (``%z``), else ``zone``."""
    cache: dict[str, datetime] = {}

    def read(text: str) -> datetime:
        hit = cache.get(text)
        if hit is not None:
            return hit
        stripped = text.strip()
        if time_format is None:
            moment = datetime.fromisoformat(stripped)
        else:
            moment = datetime.strptime(stripped, time_format)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        result = moment.astimezone(UTC)
        if len(cache) >= TIME_CACHE_LIMIT:
            cache.clear()
        cache[text] = result
        return result

    return read


def _amount_reader(decimal_separator: str) -> Callable[[str, str], Decimal | None]:
    """Cell text to Decimal (``None`` when blank); ``(1,000.00)`` is negative."""

    def read(text: str, field: str) -> Decimal | None:
        cleaned = text
        if decimal_separator == ",":
            cleaned = (
                text.replace(".", "")
                .replace(" ", "")
                .replace("\u00a0", "")
                .replace("\u202f", "")
                .replace(",", ".")
            )
        try:
            return money(cleaned, field)
        except InvalidValue:
            stripped = cleaned.strip()
            if stripped.startswith("(") and stripped.endswith(")"):
                try:
                    inner = money(stripped[1:-1], field)
                except InvalidValue:
                    pass
                else:
                    if inner is not None:
                        return -inner
            raise InvalidValue(field, f"{text!r} is not a number") from None

    return read


def _lookup(values: dict[str, Any], text: str, field: str, allowed: str) -> Any:
    found = values.get(text)
    if found is None:
        found = values.get(text.strip().casefold())
        if found is None:
            what = f"{text!r} is not one of {allowed}" if text.strip() else "is empty"
            raise InvalidValue(field, what)
    return found


RowMapper = Callable[[list[str], int, str, bytes], "Observation | Reject | None"]


def _row_mapper(options: DelimitedOptions, layout: _Layout, source: str) -> RowMapper:
    """The per-row function for one layout (a closure: locals are the fast path)."""
    width = layout.width
    names = layout.names
    receipt_of = layout.cell("receipt")
    time_of = layout.cell("time")
    if receipt_of is None or time_of is None:  # the options model requires both
        raise RuntimeError("receipt and time columns are not mapped")
    amount_of = layout.cell("amount")
    credit_of = layout.cell("credit") or _blank
    debit_of = layout.cell("debit") or _blank
    direction_of = layout.cell("direction")
    entry_of = layout.cell("entry")
    reference_of = layout.cell("reference")
    msisdn_of = layout.cell("msisdn")
    name_of = layout.cell("name")
    balance_of = layout.cell("balance")
    currency_of = layout.cell("currency")
    status_of = layout.cell("status")
    related_of = layout.cell("related_receipt")

    receipt_col, time_col = names["receipt"], names["time"]
    amount_col = names.get("amount", "")
    credit_col, debit_col = names.get("credit", ""), names.get("debit", "")
    balance_col = names.get("balance", "balance")
    currency_col = names.get("currency", "currency")
    fallback_currency = options.currency
    zone = resolve_timezone(options.timezone)
    read_time = _time_reader(options.time_format, zone)
    time_text = options.time_format or "ISO 8601"
    read_amount = _amount_reader(options.decimal_separator)
    directions = lowered(options.direction_values) or DEFAULT_DIRECTIONS
    statuses = lowered(options.status_values) or DEFAULT_STATUSES
    entries = lowered(options.entry_values) or ENTRY_NAMES
    allowed_directions = ", ".join(sorted({repr(k) for k in directions}))
    allowed_statuses = ", ".join(sorted({repr(k) for k in statuses}))
    allowed_entries = ", ".join(sorted({repr(k) for k in entries}))
    fixed_entry = options.entry
    provider, account = options.provider, options.account
    credit, debit = Direction.CREDIT, Direction.DEBIT
    payment, payout = Entry.PAYMENT, Entry.PAYOUT
    completed = Status.COMPLETED
    pad = [""] * width

    def map_row(
        row: list[str], line: int, raw: str, evidence: bytes
    ) -> Observation | Reject | None:
        if len(row) < width:
            row = row + pad[len(row) :]
        field = receipt_col
        try:
            receipt = receipt_of(row).strip()
            if not receipt:
                if not "".join(row).strip():
                    return None  # a delimiter-only line, typically trailing
                raise InvalidValue(receipt_col, "is empty")
            field = time_col
            when = time_of(row)
            try:
                occurred = read_time(when)
            except (ValueError, OverflowError):
                reason = f"{when!r} is not a {time_text} time" if when.strip() else "is empty"
                raise InvalidValue(time_col, reason) from None

            if amount_of is not None:
                field = amount_col
                amount = read_amount(amount_of(row), amount_col)
                if amount is None:
                    raise InvalidValue(amount_col, "is empty")
                if direction_of is not None:
                    direction = _lookup(
                        directions, direction_of(row), names["direction"], allowed_directions
                    )
                    if amount < 0:
                        if direction is credit:
                            raise InvalidValue(
                                amount_col,
                                f"{amount} is negative but {names['direction']} says credit",
                            )
                        amount = -amount
                elif amount < 0:
                    amount, direction = -amount, debit
                else:
                    direction = credit
            else:
                paid = read_amount(credit_of(row), credit_col)
                spent = read_amount(debit_of(row), debit_col)
                if spent is None or (not spent and paid):
                    if paid is None:
                        raise InvalidValue(
                            credit_col, f"neither {credit_col} nor {debit_col} has an amount"
                        )
                    if paid < 0:
                        raise InvalidValue(credit_col, f"{paid} is negative in a credit column")
                    amount, direction, field = paid, credit, credit_col
                elif not paid:
                    amount, direction, field = abs(spent), debit, debit_col
                else:
                    raise InvalidValue(
                        credit_col, f"both {credit_col} and {debit_col} have an amount"
                    )

            entry = None
            if entry_of is not None:
                entry_text = entry_of(row)
                if entry_text.strip():  # blank: the fixed entry, else by direction
                    entry = _lookup(entries, entry_text, names["entry"], allowed_entries)
            if entry is None:
                entry = fixed_entry or (payment if direction is credit else payout)

            status = completed
            if status_of is not None:
                status = _lookup(statuses, status_of(row), names["status"], allowed_statuses)

            currency = fallback_currency
            if currency_of is not None:
                text = currency_of(row).strip().upper()
                if text:
                    currency = text
            if currency is None:
                raise InvalidValue(currency_col, "is empty")
            if currency not in CURRENCIES:
                raise InvalidValue(currency_col, f"{currency!r} is not a known ISO 4217 code")

            balance = None
            if balance_of is not None:
                balance = read_amount(balance_of(row), balance_col)
            counterparty = None
            if msisdn_of is not None or name_of is not None:
                counterparty = Counterparty.of(
                    msisdn_of(row) if msisdn_of is not None else None,
                    name_of(row) if name_of is not None else None,
                )
            reference = reference_of(row).strip() or None if reference_of is not None else None
            related = related_of(row).strip() or None if related_of is not None else None
            transaction = Transaction.fast(
                provider,
                account,
                receipt,
                entry,
                direction,
                amount,
                currency,
                occurred,
                counterparty,
                reference,
                balance,
                status,
                related,
            )
        except InvalidValue as exc:
            column = {
                "amount": field,
                "balance_after": balance_col,
                "currency": currency_col,
                "receipt": receipt_col,
            }.get(exc.field, exc.field)
            return Reject(source, line, column, exc.message, evidence)
        return Observation(transaction, source, line, evidence)

    return map_row


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
            layout = _Layout(options, None)
            map_row = _row_mapper(options, layout, source)
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
                            layout = _Layout(options, row)
                            if layout.missing:
                                for column, reason in layout.missing:
                                    yield Reject(source, line, column, reason, raw.encode())
                                return
                            map_row = _row_mapper(options, layout, source)
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
