"""The parts on their own: match rules and groups, balance chains, day boundaries."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from pesabridge.reconcile import ReconciliationConfig, list_day_summaries, run_reconciliation
from pesabridge.reconcile.balance import Chain, chain_from_file, check_chain
from pesabridge.reconcile.matching import Item, match, normalise_reference
from pesabridge.reconcile.periods import day_of, period_bounds, raw_day_of
from pesabridge.reconcile.settings import MatchRules
from pesabridge.store import Store

from .scenario import ACCOUNT, build_day

EAT = ZoneInfo("Africa/Nairobi")
T0 = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


def test_references_are_compared_after_trimming_case_and_spaces() -> None:
    assert normalise_reference("  inv 10 01 ") == normalise_reference("INV1001") == "INV1001"
    assert normalise_reference("   ") is None


def test_rules_pair_by_amount_time_and_reference_with_a_confidence() -> None:
    rules = MatchRules(amount_tolerance=Decimal("0.50"), time_window_minutes=30)
    left = [
        Item(1, 150000, T0, reference="INV1"),
        Item(2, 250000, T0, reference="INV2", counterparty="254712345678"),
        Item(3, 99900, T0, reference="INV3"),
    ]
    right = [
        Item(10, 150000, T0 + timedelta(minutes=3), reference="INV1"),  # close in time
        Item(11, 250030, T0, reference="INV2", counterparty="254700000000"),  # other payer
        Item(12, 99900, T0 + timedelta(hours=2), reference="INV3"),  # outside the window
    ]
    result = match(left, right, rules, tolerance=50)
    (pair,) = result.pairs
    assert (pair.left, pair.right, pair.method) == ((1,), (10,), "rule")
    assert 0.9 < pair.confidence < 1.0
    assert {i.ref for i in result.left_over} == {2, 3}
    # a hashed MSISDN is never compared (the caller passes None): the pair then holds
    hashed = [Item(11, 250030, T0, reference="INV2", counterparty=None)]
    assert match(left[1:2], hashed, rules, tolerance=50).pairs[0].confidence < 1.0


def test_groups_match_many_to_one_and_one_to_many() -> None:
    rules = MatchRules()
    charges = [Item(i, 100 * i, T0, group="2024-05-06/charge") for i in range(1, 5)]
    one_line = [Item(99, 1000, None, slots=("2024-05-06/",))]
    result = match(charges, one_line, rules, tolerance=0)
    (pair,) = result.pairs
    assert (pair.left, pair.right, pair.method) == ((1, 2, 3, 4), (99,), "group")

    payment = [Item(7, 5000, T0, receipt="SK1", slots=("r:SK1",))]
    split = [Item(20, 3000, None, group="r:SK1"), Item(21, 2000, None, group="r:SK1")]
    (pair,) = match(payment, split, rules, tolerance=0).pairs
    assert (pair.left, pair.right) == ((7,), (20, 21))


def _chain(rows: list[tuple[int, int | None]], opening: int = 1000) -> Chain:
    chain = Chain()
    for line, (signed, balance) in enumerate(rows, start=1):
        chain.add(line, signed, balance, T0 + timedelta(minutes=line))
    return chain


def test_a_chain_break_is_reported_at_the_first_row_where_it_happens() -> None:
    good = [(100, 1100), (-10, 1090), (50, None), (20, 1160)]
    assert check_chain(_chain(good), opening_minor=1000, closing_minor=1160) == []

    jump = [(100, 1100), (-10, 1090), (20, 1300), (5, 1305)]  # a row of 190 missing
    (row, closing) = check_chain(_chain(jump), opening_minor=1000, closing_minor=1115)
    assert (row.kind, row.line, row.expected_minor, row.stated_minor) == ("row", 3, 1110, 1300)
    assert closing.kind == "closing"

    misprint = [(100, 1100), (-10, 1099), (20, 1110)]  # line 2 alone is wrong
    (only,) = check_chain(_chain(misprint), opening_minor=1000, closing_minor=1110)
    assert (only.kind, only.line, only.difference_minor) == ("misprint", 2, 9)

    (totals,) = check_chain(_chain(good), opening_minor=1000, closing_minor=1170)[:1]
    assert totals.kind == "totals"


def test_a_newest_first_statement_is_checked_oldest_first(store: Store, tmp_path: Path) -> None:
    _day, statement, _file = build_day(store, tmp_path, anomalies=False, count=8)
    chain = chain_from_file(statement)
    assert len(chain) == 16
    assert next(iter(chain.order())) == 15  # the portal lists the newest row first
    assert chain.unknown == 0


def test_days_are_bounded_in_the_accounts_zone() -> None:
    start, end = period_bounds(date(2024, 5, 6), date(2024, 5, 6), EAT)
    assert (start, end) == (
        datetime(2024, 5, 5, 21, tzinfo=UTC),
        datetime(2024, 5, 6, 21, tzinfo=UTC),
    )
    eat_day = day_of(EAT)
    assert eat_day(datetime(2024, 5, 6, 21, 30, tzinfo=UTC)) == date(2024, 5, 7)
    raw = raw_day_of(EAT)
    assert raw("2024-05-06 21:30:00.000000") == date(2024, 5, 7)
    assert raw("2024-05-06 20:59:59.999999") == date(2024, 5, 6)
    india = raw_day_of(ZoneInfo("Asia/Kolkata"))  # +05:30: cached by the minute
    assert india("2024-05-06 18:29:00") == date(2024, 5, 6)
    assert india("2024-05-06 18:31:00") == date(2024, 5, 7)
    london = day_of(ZoneInfo("Europe/London"))  # daylight saving: per hour
    assert london(datetime(2024, 7, 1, 23, 30, tzinfo=UTC)) == date(2024, 7, 2)
    assert london(datetime(2024, 1, 1, 23, 30, tzinfo=UTC)) == date(2024, 1, 1)


def test_a_late_evening_payment_counts_on_its_local_day(store: Store, tmp_path: Path) -> None:
    """23:30 EAT is 20:30 UTC the same day; 00:30 EAT is 21:30 UTC the day before."""
    from pesabridge.devtools.reconcile_days import generate_day

    from .scenario import receive_callbacks

    day = generate_day(date(2024, 5, 6), 3, anomalies=False)
    receive_callbacks(store, day.callbacks)
    # the generator's payments fall between 06:00 and 22:00 EAT; shift one past midnight
    late = day.payments[0]
    import json

    from pesabridge.devtools.reconcile_days import callback_body

    body = callback_body(late, ACCOUNT) | {"TransID": "SKLATE0001", "TransTime": "20240507003000"}
    receive_callbacks(store, [json.dumps(body).encode()])
    run_reconciliation(store, ACCOUNT, date(2024, 5, 6), date(2024, 5, 7))
    days = {d.day: d for d in list_day_summaries(store, account=ACCOUNT)}
    assert days[date(2024, 5, 6)].count("awaiting_statement") == 3
    assert days[date(2024, 5, 7)].count("awaiting_statement") == 1
    utc_config = ReconciliationConfig(timezone="UTC")
    run_reconciliation(store, ACCOUNT, date(2024, 5, 6), date(2024, 5, 7), config=utc_config)
    days = {d.day: d for d in list_day_summaries(store, account=ACCOUNT)}
    assert days[date(2024, 5, 6)].count("awaiting_statement") == 4


def test_settings_are_validated() -> None:
    with pytest.raises(ValidationError, match="not an IANA time zone"):
        ReconciliationConfig(timezone="East Africa")
    with pytest.raises(ValidationError, match="unknown field"):
        ReconciliationConfig.model_validate({"backoffice": {"columns": {"amnt": "Amount"}}})


@pytest.mark.postgres
def test_days_do_not_depend_on_the_database_sessions_zone(pg_url: str) -> None:
    """PostgreSQL hands times back in the session's zone: the days stay EAT days."""
    import json

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from pesabridge.devtools.reconcile_days import callback_body, generate_day

    from .scenario import receive_callbacks

    name = make_url(pg_url).database
    admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"ALTER DATABASE \"{name}\" SET timezone TO 'America/Lima'"))
    admin.dispose()
    store = Store.open(pg_url)
    try:
        day = generate_day(date(2024, 5, 6), 2, anomalies=False)
        late = callback_body(day.payments[0], ACCOUNT) | {
            "TransID": "SKLATE0002",
            "TransTime": "20240506233000",  # 20:30 UTC, 15:30 in Lima: still the 6th
        }
        early = callback_body(day.payments[0], ACCOUNT) | {
            "TransID": "SKEARLY002",
            "TransTime": "20240507003000",  # 21:30 UTC on the 6th, 16:30 in Lima
        }
        receive_callbacks(store, [json.dumps(late).encode(), json.dumps(early).encode()])
        report = run_reconciliation(store, ACCOUNT, date(2024, 5, 6), date(2024, 5, 7))
        days = {d.day: d.count("awaiting_statement") for d in report.days}
        assert days == {date(2024, 5, 6): 1, date(2024, 5, 7): 1}
    finally:
        store.close()
