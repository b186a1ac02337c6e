"""What the statement encoders (camt, MT940, OFX) share: checks, dates, ids and options.

Every statement encoder runs :func:`check_statement` before writing a byte, so a bad
statement fails with one clear :class:`EncodeError` naming the receipt and field, never
with a half-written document or a schema error about an element the user never saw.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import ConfigError, InvalidValue
from ..model import Direction, Entry, Status, Transaction, minor_units, quantize
from .base import EncodeError, Statement

DEFAULT_TIMEZONE = "Africa/Nairobi"
"""Dates on statements are the provider's business day; M-Pesa's is East Africa Time."""


def option_error(encoder: str, option: str, message: str) -> ConfigError:
    return ConfigError([f"encoder {encoder}: option {option}: {message}"])


def choose(encoder: str, option: str, value: object, allowed: Collection[str]) -> str:
    """``value`` as one of ``allowed`` (ints accepted for YAML's ``version: 02``)."""
    text = str(value)
    if text not in allowed:
        raise option_error(
            encoder, option, f"{value!r} is not one of {', '.join(map(repr, allowed))}"
        )
    return text


def zone(encoder: str, name: str) -> tzinfo:
    """The IANA zone named by the ``timezone`` option."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise option_error(encoder, "timezone", f"{name!r} is not an IANA time zone") from None


def check_currency(currency: str) -> int:
    """The currency's minor units, or an :class:`EncodeError` for an unknown code."""
    try:
        return minor_units(currency)
    except InvalidValue:
        raise EncodeError(
            f"{currency!r} is not a known ISO 4217 currency", field="currency"
        ) from None


def exact(amount: Decimal, currency: str, field: str, receipt: str | None = None) -> Decimal:
    """``amount`` with exactly the currency's minor units (never rounded)."""
    try:
        return quantize(amount, currency, field)
    except InvalidValue as exc:
        raise EncodeError(exc.message, receipt=receipt, field=field) from None


def money(amount: Decimal, currency: str, field: str = "amount", receipt: str | None = None) -> str:
    """``1020.00`` (KES), ``1500`` (UGX): the absolute amount with exactly the minor units."""
    return f"{abs(exact(amount, currency, field, receipt)):f}"


def entry_id(txn: Transaction) -> str:
    """A per-row unique id: the receipt, suffixed for the rows that share it.

    An M-Pesa statement has a payment row *and* a charge row with the same receipt; the
    charge (and any other secondary row) gets ``-CHG`` / ``-<ENTRY>`` so OFX ``FITID`` and
    camt ``NtryRef`` stay unique.
    """
    if txn.entry is Entry.CHARGE:
        return f"{txn.receipt}-CHG"
    if txn.entry in _PRIMARY:
        return txn.receipt
    return f"{txn.receipt}-{txn.entry.value.upper()[:3]}"


_PRIMARY = frozenset(
    {Entry.PAYMENT, Entry.PAYOUT, Entry.TRANSFER, Entry.REVERSAL, Entry.SETTLEMENT}
)


def describe(txn: Transaction) -> str:
    """What the row is, in words, for free-text fields (``Charge for SE61D4E5F6``)."""
    related = txn.related_receipt
    if txn.entry is Entry.CHARGE:
        return f"Charge for {related}" if related else "Charge"
    if txn.entry is Entry.REVERSAL:
        return f"Reversal of {related}" if related else "Reversal"
    return txn.entry.value.capitalize()


def is_reversal(txn: Transaction) -> bool:
    return txn.entry is Entry.REVERSAL


@dataclass(frozen=True, slots=True)
class Checked:
    """A statement that passed :func:`check_statement`, with what the writers need."""

    statement: Statement
    minor: int
    opening: Decimal
    closing: Decimal
    credits: Decimal
    debits: Decimal
    dates: list[date]
    """Each entry's booking date in the statement's zone, in entry order."""


def check_statement(statement: Statement, tz: tzinfo) -> Checked:
    """Refuse a statement that cannot be written faithfully; return its derived values.

    Checks: a known currency; every entry in that currency, on this account (or none),
    booked (not ``failed``), with a time inside the statement period (in ``tz``), a
    unique row id; balances with exactly the currency's minor units; and the closing
    balance derived as ``opening + credits − debits`` in the same pass (see
    :func:`check_balance_after` for the check against the provider's own balance).
    """
    currency = statement.currency
    minor = check_currency(currency)
    if statement.period_end < statement.period_start:
        raise EncodeError(
            f"period ends ({statement.period_end}) before it starts ({statement.period_start})",
            field="period_end",
        )
    opening = exact(statement.opening_balance, currency, "opening_balance")
    credits = Decimal(0)
    debits = Decimal(0)
    dates: list[date] = []
    seen: set[str] = set()
    for txn in statement.entries:
        receipt = txn.receipt
        if txn.currency != currency:
            raise EncodeError(
                f"is in {txn.currency}, the statement in {currency}",
                receipt=receipt,
                field="currency",
            )
        if txn.account is not None and txn.account != statement.account:
            raise EncodeError(
                f"belongs to account {txn.account}, not {statement.account}",
                receipt=receipt,
                field="account",
            )
        if txn.status is Status.FAILED:
            raise EncodeError(
                "failed: moved no money, so it is no statement entry",
                receipt=receipt,
                field="status",
            )
        if txn.occurred_at is None:
            raise EncodeError(
                "has no time, so no booking date", receipt=receipt, field="occurred_at"
            )
        day = local_date(txn.occurred_at, tz)
        if not statement.period_start <= day <= statement.period_end:
            raise EncodeError(
                f"booked on {day}, outside the statement period "
                f"{statement.period_start}..{statement.period_end}",
                receipt=receipt,
                field="occurred_at",
            )
        row = entry_id(txn)
        if row in seen:
            raise EncodeError(f"row {row} appears twice", receipt=receipt, field="entry")
        seen.add(row)
        dates.append(day)
        if txn.direction is Direction.CREDIT:
            credits += txn.amount
        else:
            debits += txn.amount
    closing = opening + credits - debits
    return Checked(statement, minor, opening, closing, credits, debits, dates)


def check_balance_after(checked: Checked) -> None:
    """Where entries carry the provider's running balance, it must agree with ours.

    The provider's ``balance_after`` on the last entry in time is the closing balance it
    reports; a statement whose opening balance and entries do not lead there is refused
    (a missing or duplicated row, or a wrong opening balance).
    """
    entries = checked.statement.entries
    with_balance = [t for t in entries if t.balance_after is not None and t.occurred_at]
    if not with_balance:
        return
    # newest last; among rows of the same second the provider's own order decides
    latest = max(with_balance, key=lambda t: t.occurred_at or datetime.min)
    same_time = [t for t in with_balance if t.occurred_at == latest.occurred_at]
    reported = {t.balance_after for t in same_time}
    if checked.closing not in reported:
        raise EncodeError(
            f"closing balance {checked.closing} (opening {checked.opening} + credits "
            f"{checked.credits} - debits {checked.debits}) does not match the provider's "
            f"balance after the last entry ({', '.join(sorted(map(str, reported)))})",
            receipt=latest.receipt,
            field="balance_after",
        )


def local_date(moment: datetime, tz: tzinfo) -> date:
    return moment.astimezone(tz).date()
