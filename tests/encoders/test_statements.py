"""build_statements: per account per local day, balances derived and checked."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from pesabridge.encoders.base import EncodeError
from pesabridge.encoders.statements import build_statements
from pesabridge.model import Direction, Entry, Status, Transaction
from tests.helpers import txn

STATEMENT = "mpesa-statement/ORG_600977_Utility Account_Completed_20240507070000.csv.jsonl"


def load(path: Path) -> list[Transaction]:
    return [Transaction.from_dict(json.loads(line)) for line in path.read_text().splitlines()]


def at(hour: int, minute: int = 0, day: int = 6) -> datetime:
    return datetime(2024, 5, day, hour, minute, tzinfo=UTC)


def test_mpesa_sample_is_one_day_with_balances(samples_dir: Path) -> None:
    entries = load(samples_dir / "expected" / STATEMENT)
    [statement] = build_statements(entries)
    assert statement.account == "600977"
    assert statement.period_start == statement.period_end == date(2024, 5, 6)
    assert statement.opening_balance == Decimal("12500.00")
    assert statement.closing_balance == Decimal("19201.65")
    assert statement.closing_balance == statement.entries[-1].balance_after
    assert len(statement.entries) == len(entries)
    times = [t.occurred_at for t in statement.entries]
    assert times == sorted(times)  # type: ignore[type-var]
    # a payment and its charge share a time: the payment comes first, as balances chain
    first, second = statement.entries[0], statement.entries[1]
    assert (first.entry, second.entry) == (Entry.PAYMENT, Entry.CHARGE)
    assert statement.statement_id == "600977-20240506"


def test_days_are_local_days() -> None:
    # 20:59 UTC is 23:59 EAT on the 6th; 21:00 UTC is 00:00 EAT on the 7th
    entries = [txn("A", occurred_at=at(20, 59)), txn("B", occurred_at=at(21, 0))]
    eat = build_statements(entries, opening_balance=Decimal("10"))
    assert [s.period_start for s in eat] == [date(2024, 5, 6), date(2024, 5, 7)]
    assert eat[0].opening_balance == Decimal("10.00")
    assert eat[1].opening_balance == eat[0].closing_balance == Decimal("1510.00")
    utc = build_statements(entries, "UTC")
    assert [s.period_start for s in utc] == [date(2024, 5, 6)]


def test_opening_balance_from_the_first_entry_with_a_balance() -> None:
    entries = [
        txn("A", occurred_at=at(8), amount=Decimal("100.00")),
        txn("B", occurred_at=at(9), amount=Decimal("50.00"), balance_after=Decimal("1150.00")),
        txn(
            "C",
            occurred_at=at(10),
            direction=Direction.DEBIT,
            amount=Decimal("30.00"),
            balance_after=Decimal("1120.00"),
        ),
    ]
    [statement] = build_statements(reversed(entries), opening_balance=Decimal("999"))
    assert statement.opening_balance == Decimal("1000.00")
    assert statement.closing_balance == Decimal("1120.00")
    assert [t.receipt for t in statement.entries] == ["A", "B", "C"]


def test_gap_in_balances_is_a_clear_error() -> None:
    entries = [
        txn("A", occurred_at=at(8), balance_after=Decimal("1500.00")),
        txn("C", occurred_at=at(10), balance_after=Decimal("5000.00")),
    ]
    with pytest.raises(EncodeError, match=r"expected 3000\.00") as caught:
        build_statements(entries)
    assert caught.value.receipt == "C"
    assert caught.value.field == "balance_after"


def test_grouping_by_account_and_currency_failed_left_out() -> None:
    entries = [
        txn("A", account="600100"),
        txn("B", account="600200"),
        txn("C", account="600100", amount=Decimal("5000"), currency="UGX"),
        txn("D", account="600100", status=Status.FAILED),
    ]
    statements = build_statements(entries)
    assert [(s.account, s.currency, len(s.entries)) for s in statements] == [
        ("600100", "KES", 1),
        ("600200", "KES", 1),
        ("600100", "UGX", 1),
    ]


def test_refusals() -> None:
    with pytest.raises(EncodeError, match="no statement day"):
        build_statements([txn(occurred_at=None)])
    with pytest.raises(EncodeError, match="no account"):
        build_statements([txn(account=None)])
    with pytest.raises(EncodeError) as caught:
        build_statements([txn()], opening_balance=Decimal("1.005"))
    assert caught.value.field == "opening_balance"
    with pytest.raises(EncodeError, match="time zone"):
        build_statements([txn()], "Mars/Olympus")
    assert build_statements([]) == []
