"""The ``delimited`` format's rows: one data row to an observation or a reject.

The row mapper is built once per layout; a row that cannot be read becomes a reject
naming the column as written in the header and the reason.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import InvalidValue
from ..model import CURRENCIES, Counterparty, Direction, Entry, Status, Transaction
from .base import Observation, Reject
from .delimited_layout import Layout
from .delimited_options import (
    DEFAULT_DIRECTIONS,
    DEFAULT_STATUSES,
    ENTRY_NAMES,
    DelimitedOptions,
    lowered,
    resolve_timezone,
)
from .delimited_values import amount_reader, lookup, time_reader


def _blank(row: list[str]) -> str:
    return ""


RowMapper = Callable[[list[str], int, str, bytes], "Observation | Reject | None"]


def row_mapper(options: DelimitedOptions, layout: Layout, source: str) -> RowMapper:
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
    read_time = time_reader(options.time_format, zone)
    time_text = options.time_format or "ISO 8601"
    read_amount = amount_reader(options.decimal_separator)
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
                    direction = lookup(
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
                    entry = lookup(entries, entry_text, names["entry"], allowed_entries)
            if entry is None:
                entry = fixed_entry or (payment if direction is credit else payout)

            status = completed
            if status_of is not None:
                status = lookup(statuses, status_of(row), names["status"], allowed_statuses)

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
