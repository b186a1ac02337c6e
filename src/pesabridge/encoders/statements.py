"""Canonical transactions into statements: one per account per day, balances checked.

Shared by every statement encoder's caller (``pesabridge transform``, the file sinks):

* entries are grouped by provider, account and currency, and split into days in the
  account's time zone (East Africa Time, ``Africa/Nairobi``, by default);
* within a day they are in time order; entries with the same time (an M-Pesa payment and
  its charge) are put in the order their running balances chain;
* the opening balance comes from the balances when entries carry them (the earliest
  balance minus the signed amounts up to it); otherwise the first day of an account opens
  with ``opening_balance`` and each later day with the day before's closing balance;
* every reported ``balance_after`` must equal the running balance, so the closing
  balance equals the last entry's ``balance_after``: a gap (entries missing from the
  input) is an :class:`EncodeError` naming the entry, never a statement that does not add
  up;
* failed transactions moved no money and are left out.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, tzinfo
from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from ..errors import InvalidValue
from ..model import Direction, Status, Transaction, quantize
from .base import EncodeError, Statement

DEFAULT_ZONE = "Africa/Nairobi"


def signed(txn: Transaction) -> Decimal:
    """The amount with the business's sign: credits positive, debits negative."""
    return txn.amount if txn.direction is Direction.CREDIT else -txn.amount


def as_zone(zone: tzinfo | str) -> tzinfo:
    """A ``tzinfo`` from an IANA name (``Africa/Kampala``) or a ``tzinfo``."""
    if not isinstance(zone, str):
        return zone
    try:
        return ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise EncodeError(f"{zone!r} is not a known time zone", field="zone") from None


def build_statements(
    transactions: Iterable[Transaction],
    zone: tzinfo | str = DEFAULT_ZONE,
    opening_balance: Decimal = Decimal(0),
    *,
    created_at: datetime | None = None,
) -> list[Statement]:
    """Statements for ``transactions``: one per provider, account, currency and local day.

    Ordered by account (first seen first) and day. Raises :class:`EncodeError` for an
    entry without a time or an account, an ``opening_balance`` with more decimals than
    the currency has, or balances that do not add up.
    """
    tz = as_zone(zone)
    created = created_at or datetime.now(UTC)
    accounts: dict[tuple[str, str, str], list[Transaction]] = {}
    for txn in transactions:
        if txn.status is Status.FAILED:
            continue
        if txn.occurred_at is None:
            raise EncodeError(
                "has no time, so no statement day", receipt=txn.receipt, field="occurred_at"
            )
        if txn.account is None:
            raise EncodeError(
                "has no account, so no statement", receipt=txn.receipt, field="account"
            )
        accounts.setdefault((txn.provider, txn.account, txn.currency), []).append(txn)
    statements: list[Statement] = []
    for (provider, account, currency), entries in accounts.items():
        try:
            running = quantize(opening_balance, currency, "opening_balance")
        except InvalidValue as exc:
            raise EncodeError(exc.message, field="opening_balance") from None
        days: dict[date, list[Transaction]] = {}
        for txn in sorted(entries, key=_when):
            days.setdefault(_when(txn).astimezone(tz).date(), []).append(txn)
        previous: Decimal | None = None
        for day, day_entries in days.items():
            ordered = _chain_ties(day_entries, previous)
            opening = _opening(ordered, running)
            _check_balances(ordered, opening)
            statement = Statement(
                account=account,
                currency=currency,
                period_start=day,
                period_end=day,
                opening_balance=opening,
                entries=tuple(ordered),
                provider=provider,
                statement_id=f"{account}-{day:%Y%m%d}",
                created_at=created,
            )
            statements.append(statement)
            running = statement.closing_balance
            previous = ordered[-1].balance_after
    return statements


def _when(txn: Transaction) -> datetime:
    assert txn.occurred_at is not None  # checked by build_statements
    return txn.occurred_at


def _opening(entries: list[Transaction], carried: Decimal) -> Decimal:
    """The balance before the first entry: from the first reported balance, else carried."""
    total = Decimal(0)
    for txn in entries:
        total += signed(txn)
        if txn.balance_after is not None:
            return txn.balance_after - total
    return carried


def _check_balances(entries: list[Transaction], opening: Decimal) -> None:
    balance = opening
    for txn in entries:
        balance += signed(txn)
        if txn.balance_after is not None and txn.balance_after != balance:
            raise EncodeError(
                f"balance_after {txn.balance_after} does not follow from the entries before "
                f"it (expected {balance}): entries are missing from the input, or are not "
                "the same account's",
                receipt=txn.receipt,
                field="balance_after",
            )


def _chain_ties(entries: list[Transaction], previous: Decimal | None) -> list[Transaction]:
    """Entries with equal times put in the order their balances chain, where they do."""
    result: list[Transaction] = []
    index = 0
    while index < len(entries):
        end = index + 1
        while end < len(entries) and entries[end].occurred_at == entries[index].occurred_at:
            end += 1
        group = entries[index:end]
        if len(group) > 1:
            group = _chain(group, previous)
        result.extend(group)
        previous = group[-1].balance_after
        index = end
    return result


def _chain(group: list[Transaction], previous: Decimal | None) -> list[Transaction]:
    if any(txn.balance_after is None for txn in group):
        return group
    before = {id(txn): txn.balance_after - signed(txn) for txn in group}  # type: ignore[operator]
    if previous is None:
        afters = {txn.balance_after for txn in group}
        starts = [txn for txn in group if before[id(txn)] not in afters]
        if len(starts) != 1:
            return group
        previous = before[id(starts[0])]
    remaining = list(group)
    ordered: list[Transaction] = []
    current: Decimal | None = previous
    while remaining:
        following = next((t for t in remaining if before[id(t)] == current), None)
        if following is None:
            return group  # no chain: keep the input order, the balance check will say more
        ordered.append(following)
        remaining.remove(following)
        current = following.balance_after
    return ordered
