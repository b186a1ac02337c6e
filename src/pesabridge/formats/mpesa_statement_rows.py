"""An M-Pesa statement's rows: one data row to an observation or a reject.

Each row's entry (payment, charge, settlement, reversal, transfer, payout), direction,
status, counterparty and currency are read here; a row that cannot be read becomes a
reject naming the column as written in the header and the reason.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from operator import itemgetter

from ..errors import InvalidValue
from ..model import CURRENCIES, Counterparty, Direction, Entry, Status, Transaction
from ..model.msisdn import MsisdnKind, classify_msisdn
from ._text import eat_text_to_utc, money
from .base import Observation, Reject
from .mpesa_statement_columns import (
    BALANCE,
    CURRENCY,
    LINKED,
    OTHER,
    PAID,
    RECEIPT,
    REFERENCE,
    STATUS,
    TIME,
    WITHDRAWN,
)

PROVIDER = "mpesa"

RowMapper = Callable[[list[str], int, str], "Observation | Reject | None"]

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


def row_mapper(
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
    receipt_col = names[RECEIPT]
    time_col = names[TIME]
    paid_col = names[PAID]
    withdrawn_col = names[WITHDRAWN]
    balance_col = names.get(BALANCE, "Balance")
    status_col = names.get(STATUS, "Transaction Status")
    currency_col = names.get(CURRENCY, "Currency")
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
                "reference": names.get(REFERENCE, "A/C No."),
                "related_receipt": names.get(LINKED, "Linked Transaction ID"),
                "counterparty.msisdn": names.get(OTHER, "Other Party Info"),
                "counterparty.name": names.get(OTHER, "Other Party Info"),
            }
            field = columns.get(exc.field, exc.field)
            return _reject(source, line, field, exc.message, raw)
        return Observation(transaction, source, line, raw.encode())

    return map_row
