"""Transaction search and CSV export: what each filter finds, on SQLite and PostgreSQL,
and that the searches the dashboard promises to be fast use their indexes."""

from __future__ import annotations

import csv
import io
from datetime import UTC, timedelta

import pytest
from sqlalchemy import create_engine, text

from pesabridge.dashboard.search import Filters, _query, parse_filters, search
from pesabridge.store import Store, utcnow

from . import seed
from .serving import login


def _receipts(store: Store, unmasked: bool = True, **params: str) -> list[str]:
    f = parse_filters(params, unmasked=unmasked)
    assert not f.errors, f.errors
    with store.read() as conn:
        rows, _more = search(conn, f, UTC)
    return [r["receipt"] for r in rows]


def test_each_filter_finds_what_it_says(seeded: Store) -> None:
    assert _receipts(seeded, receipt="slk1000002") == ["SLK1000002"]
    assert _receipts(seeded, phone="5678") == ["SLK1000001"]
    assert _receipts(seeded, phone="+254 722 000 111") == ["SLK1000002"]
    assert _receipts(seeded, phone="888") == ["SLK1000003"]  # shorter than four: scanned
    assert _receipts(seeded, phone="0111") == ["SLK1000002"]  # a suffix keeps its zero
    assert _receipts(seeded, reference="INV-2002") == ["SLK1000002"]  # case-folded
    assert _receipts(seeded, name="wanjiku") == ["SLK1000001"]
    assert _receipts(seeded, amount_min="100", amount_max="1500") == ["SLK1000001", "SLK1000002"]
    assert _receipts(seeded, amount_min="250.51") == ["SLK1000001"]
    today = utcnow().date()
    assert len(_receipts(seeded, date_from=str(today - timedelta(days=1)))) == 3
    assert _receipts(seeded, date_to=str(today - timedelta(days=2))) == []
    assert _receipts(seeded, sort="amount", direction="asc") == [
        "SLK1000003",
        "SLK1000002",
        "SLK1000001",
    ]
    assert _receipts(seeded, state="pending") == ["SLK1000001", "SLK1000002", "SLK1000003"]
    assert _receipts(seeded, state="delivered") == []
    seed.kill(seeded, "SLK1000003")
    assert _receipts(seeded, state="dead") == ["SLK1000003"]
    assert _receipts(seeded, provider="airtel") == []


def test_bad_filters_are_reported_per_field() -> None:
    f = parse_filters(
        {"amount_min": "ten", "date_from": "06/05/2024", "phone": "abc", "state": "lost"},
        unmasked=True,
    )
    assert set(f.errors) == {"amount_min", "date_from", "phone", "state"}
    assert (
        parse_filters({"phone": "712345678"}, unmasked=False)
        .errors["phone"]
        .startswith("your role sees numbers masked")
    )


def test_paging_links_keep_the_search() -> None:
    f = Filters(receipt="X", page=2)
    assert f.query_string(page=3) == "receipt=X&sort=occurred_at&direction=desc&page=3"


def test_csv_export_cannot_run_formulas(base: str) -> None:
    admin = login(base, "admin", seed.PASSWORDS["admin"])
    answer = admin.get(f"{base}/ui/transactions.csv", params={"sort": "receipt"})
    assert answer.headers["content-disposition"].startswith("attachment")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert [r["receipt"] for r in rows] == ["SLK1000003", "SLK1000002", "SLK1000001"]
    assert rows[0]["name"] == '\'=HYPERLINK("http://x")'
    assert rows[2]["amount"] == "1500.00"
    assert rows[2]["msisdn"] == "254712345678"


@pytest.mark.parametrize(
    ("params", "index"),
    [
        ({"receipt": "SLK1000001"}, "sqlite_autoindex_transactions_1 (receipt=?)"),  # the identity
        ({"phone": "5678"}, "ix_transactions_msisdn_last4"),
        ({"phone": "254712345678"}, "ix_transactions_msisdn_last4"),
        ({"reference": "inv-1001"}, "ix_transactions_reference_folded"),
        ({"date_from": "2024-05-01", "date_to": "2024-05-31"}, "ix_transactions_occurred_at"),
    ],
)
def test_the_promised_searches_use_their_index_on_sqlite(
    sqlite_url: str, params: dict[str, str], index: str
) -> None:
    store = Store.open(sqlite_url)
    try:
        f = parse_filters(params, unmasked=True)
        query = _query(f, UTC).limit(51)
        engine = create_engine(sqlite_url)
        with engine.connect() as conn:
            compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
            plan = " ".join(
                str(row[-1]) for row in conn.execute(text(f"EXPLAIN QUERY PLAN {compiled}"))
            )
        engine.dispose()
        assert index in plan, plan
    finally:
        store.close()


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("params", "index"),
    [
        ({"phone": "5678"}, "ix_transactions_msisdn_last4"),
        ({"reference": "inv-1001"}, "ix_transactions_reference_folded"),
        ({"date_from": "2024-05-01", "date_to": "2024-05-31"}, "ix_transactions_occurred_at"),
    ],
)
def test_the_promised_searches_can_use_their_index_on_postgresql(
    pg_url: str, params: dict[str, str], index: str
) -> None:
    # An empty table is scanned whatever the indexes; with scans priced out, the plan shows
    # whether the query's expression is the one indexed.
    store = Store.open(pg_url)
    try:
        query = _query(parse_filters(params, unmasked=True), UTC).limit(51)
        with store.engine.connect() as conn:
            conn.execute(text("SET enable_seqscan = off"))
            compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
            plan = " ".join(row[0] for row in conn.execute(text(f"EXPLAIN {compiled}")))
        assert index in plan, plan
    finally:
        store.close()
