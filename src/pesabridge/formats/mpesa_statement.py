"""M-Pesa business-portal statements (CSV and XLSX) into canonical transactions.

Layouts read (the header row is found by content, never by a fixed skip count):

* the org portal (G2) export: preamble rows (``Account Holder:``, ``Short Code:``,
  ``Time Period:``, balances), then ``Receipt No.,Completion Time,...,A/C No.`` with an
  optional trailing ``Currency`` column; times ``dd-MM-yyyy HH:mm:ss`` EAT;
* the same file re-saved by Excel (``dd/MM/yyyy HH:mm[:ss]``, bare numbers, cp1252);
* the legacy M-PESA 1G layout: ``Receipt,Date,Details,Status,Withdrawn,Paid In,...,
  Transaction Party Details`` with ``yyyy-MM-dd HH:mm:ss`` EAT dates.

Mapping rules are those of ``shared/samples/README.md`` and ``docs/formats/mpesa-statement.md``.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from decimal import Decimal
from operator import itemgetter
from typing import BinaryIO, ClassVar

from ..errors import InvalidValue
from ..model import CURRENCIES, Counterparty, Direction, Entry, Status, Transaction, quantize
from ..model.msisdn import MsisdnKind, classify_msisdn
from ._text import decode_head, eat_text_to_utc, money, open_text, peek
from .base import Observation, ParseItem, Reject, StatementHeader

PROVIDER = "mpesa"
DEFAULT_CURRENCY = "KES"

RowMapper = Callable[[list[str], int, str], "Observation | Reject | None"]

# Logical columns, in the order the row mapper unpacks them.
_RECEIPT, _TIME, _DETAILS, _STATUS, _PAID, _WITHDRAWN = range(6)
_BALANCE, _REASON, _OTHER, _LINKED, _REFERENCE, _CURRENCY = range(6, 12)
_COLUMNS: dict[str, int] = {
    "receipt no.": _RECEIPT,
    "receipt no": _RECEIPT,
    "receipt": _RECEIPT,
    "completion time": _TIME,
    "date": _TIME,
    "details": _DETAILS,
    "transaction status": _STATUS,
    "status": _STATUS,
    "paid in": _PAID,
    "withdrawn": _WITHDRAWN,
    "balance": _BALANCE,
    "reason type": _REASON,
    "transaction type": _REASON,
    "other party info": _OTHER,
    "linked transaction id": _LINKED,
    "a/c no.": _REFERENCE,
    "a/c no": _REFERENCE,
    "transaction party details": _REFERENCE,
    "currency": _CURRENCY,
}
_REQUIRED = {
    _RECEIPT: "Receipt No.",
    _TIME: "Completion Time",
    _PAID: "Paid In",
    _WITHDRAWN: "Withdrawn",
}
_STATUSES: dict[str, Status] = {
    "completed": Status.COMPLETED,
    "failed": Status.FAILED,
    "reversed": Status.REVERSED,
    "cancelled": Status.FAILED,
    "declined": Status.FAILED,
}
_STATUSES.update({k.capitalize(): v for k, v in list(_STATUSES.items())})
_STATUSES[""] = Status.COMPLETED  # a blank status column: the portal never prints one
_REVERSAL_OF = re.compile(r"Reversal of ([A-Z0-9]{6,})")
_FILE_SHORT_CODE = re.compile(r"ORG_(\d+)_")
_CP_CACHE_LIMIT = 50_000
_UNSET = Counterparty()  # marks "not cached" (None is a cached answer)


def _counterparty(info: str) -> Counterparty | None:
    """``Other Party Info`` split at the first `` - ``; ``SP`` (the provider itself) is nobody."""
    info = info.strip()
    if not info or info == "SP":
        return None
    msisdn, sep, name = info.partition(" - ")
    if not sep:
        if classify_msisdn(info) is MsisdnKind.HASHED:
            return Counterparty(None, None, info)  # a bare name, not an opaque id
        msisdn, name = info, ""
    msisdn, name = msisdn.strip(), name.strip()
    if not msisdn:
        return Counterparty(None, None, name) if name else None
    return Counterparty(msisdn, classify_msisdn(msisdn), name or None)


def _reject(source: str, line: int, field: str | None, reason: str, raw: str) -> Reject:
    return Reject(source, line, field, reason, raw.encode())


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
            _COLUMNS.get(c.lower()) == _TIME for c in cells
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
            column = _COLUMNS.get(cell.lower())
            if column is not None and column not in columns:
                columns[column] = index
                names[column] = cell
        missing = [label for column, label in _REQUIRED.items() if column not in columns]
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
            match = _FILE_SHORT_CODE.search(self.source)
            account = match[1] if match else None
        currency = self.currency or DEFAULT_CURRENCY
        legacy = cells[0].lower() == "receipt"
        self.map_row = _row_mapper(
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


def _row_mapper(
    source: str,
    account: str | None,
    default_currency: str,
    columns: dict[int, int],
    names: dict[int, str],
    width: int,
    date_format: str,
) -> RowMapper:
    """The per-row function for one header layout (a closure: locals are the fast path)."""
    # Absent columns read the blank cell appended to every row at index ``width``.
    fields = itemgetter(*(columns.get(c, width) for c in range(12)))
    pad = [""] * width
    cp_cache: dict[str, Counterparty | None] = {}
    receipt_col = names[_RECEIPT]
    time_col = names[_TIME]
    paid_col = names[_PAID]
    withdrawn_col = names[_WITHDRAWN]
    balance_col = names.get(_BALANCE, "Balance")
    status_col = names.get(_STATUS, "Transaction Status")
    currency_col = names.get(_CURRENCY, "Currency")
    last_when = ""
    last_occurred: datetime | None = None
    payment, charge, settlement, reversal = (
        Entry.PAYMENT,
        Entry.CHARGE,
        Entry.SETTLEMENT,
        Entry.REVERSAL,
    )
    credit, debit = Direction.CREDIT, Direction.DEBIT

    def map_row(row: list[str], line: int, raw: str) -> Observation | Reject | None:
        nonlocal last_when, last_occurred
        if len(row) != width:
            row = (row + pad)[:width]
        row.append("")
        (
            receipt,
            when,
            details,
            status_text,
            paid_text,
            withdrawn_text,
            balance_text,
            reason,
            other,
            linked,
            reference,
            currency,
        ) = fields(row)

        receipt = receipt.strip()
        if not receipt:
            if not "".join(row).strip():
                return None  # comma-only or blank line, typically trailing
            return _reject(source, line, receipt_col, "is empty", raw)
        if when == last_when:
            occurred = last_occurred  # a charge row and its payment share the time
        else:
            try:
                occurred = eat_text_to_utc(when)
            except (ValueError, OverflowError):
                reason_text = (
                    f"{when!r} is not a valid {date_format} date" if when.strip() else "is empty"
                )
                return _reject(source, line, time_col, reason_text, raw)
            last_when, last_occurred = when, occurred
        status = _STATUSES.get(status_text)
        if status is None:
            status = _STATUSES.get(status_text.strip().lower())
            if status is None:
                return _reject(
                    source,
                    line,
                    status_col,
                    f"{status_text!r} is not Completed, Failed or Reversed",
                    raw,
                )
        try:
            paid = money(paid_text, paid_col) if paid_text else None
            withdrawn = money(withdrawn_text, withdrawn_col) if withdrawn_text else None
            balance = money(balance_text, balance_col) if balance_text else None
        except InvalidValue as exc:
            return _reject(source, line, exc.field, exc.message, raw)
        if withdrawn is None or (not withdrawn and paid):
            if paid is None:
                return _reject(
                    source,
                    line,
                    paid_col,
                    f"neither {paid_col} nor {withdrawn_col} has an amount",
                    raw,
                )
            amount, direction, amount_col = paid, credit, paid_col
        elif not paid:
            amount, direction, amount_col = withdrawn, debit, withdrawn_col
        else:
            return _reject(
                source, line, paid_col, f"both {paid_col} and {withdrawn_col} have an amount", raw
            )
        if amount < 0:
            amount = -amount  # the portal prints Withdrawn negative; direction carries the sign

        # The payer's account reference is part of Details ("... Acc. Charges"), so only
        # the text before it may classify the row.
        cut = details.find(" Acc. ")
        wording = details if cut < 0 else details[:cut]
        related = None
        if "Charge" in wording:
            entry, related, reference = charge, receipt, ""
        elif reason == "Settlement" or "Settlement" in wording:
            entry, reference = settlement, ""
        elif linked or "Reversal" in wording or "Reversal" in reason:
            entry, reference = reversal, ""
            related = linked.strip() or None
            if related is None:
                match = _REVERSAL_OF.search(wording)
                related = match[1] if match else None
        elif direction is credit:
            entry = payment
        else:
            entry = Entry.TRANSFER if "Transfer" in wording else Entry.PAYOUT

        counterparty = cp_cache.get(other, _UNSET)
        if counterparty is _UNSET:
            if len(cp_cache) >= _CP_CACHE_LIMIT:
                cp_cache.clear()
            counterparty = cp_cache[other] = _counterparty(other)
        if not currency:
            currency = default_currency
        elif currency not in CURRENCIES:
            currency = currency.strip().upper() or default_currency
        if currency not in CURRENCIES:
            return _reject(
                source, line, currency_col, f"{currency!r} is not a known ISO 4217 code", raw
            )
        try:
            transaction = Transaction.fast(
                PROVIDER,
                account,
                receipt,
                entry,
                direction,
                amount,
                currency,
                occurred,
                counterparty,
                reference or None,
                balance,
                status,
                related,
            )
        except InvalidValue as exc:
            columns = {
                "amount": amount_col,
                "balance_after": balance_col,
                "receipt": receipt_col,
                "reference": names.get(_REFERENCE, "A/C No."),
                "related_receipt": names.get(_LINKED, "Linked Transaction ID"),
                "counterparty.msisdn": names.get(_OTHER, "Other Party Info"),
                "counterparty.name": names.get(_OTHER, "Other Party Info"),
            }
            field = columns.get(exc.field, exc.field)
            return _reject(source, line, field, exc.message, raw)
        return Observation(transaction, source, line, raw.encode())

    return map_row


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
                _FILE_SHORT_CODE.search(filename) is not None or "statement" in lowered
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
