"""The SQL sink upserting into a back office's own table on real MariaDB, PostgreSQL and
SQLite: one row per transaction however often it is sent; refusals dead-letter with the
database's message."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from pesabridge.config import parse_config
from pesabridge.delivery import DeliveryWorker, RetryPolicy
from pesabridge.sinks.sql import SqlSink
from pesabridge.store import Sighting, Store

from ..helpers import observed, payment

MARIADB_URL = os.environ.get("PESABRIDGE_MARIADB_URL", "mysql+pymysql://root@127.0.0.1:3306/test")
FAST = RetryPolicy(max_attempts=3, base=0.01, cap=0.02)


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A back-office database URL and a fresh table name in it."""
    yield from _back_office_table(request, tmp_path)


@pytest.fixture(params=["postgresql", "mariadb"])
def typed_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The same, on the databases that enforce column types (SQLite stores anything)."""
    yield from _back_office_table(request, tmp_path)


def _back_office_table(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    table = f"erp_payments_{uuid.uuid4().hex[:8]}"
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'erp.db'}"
    elif request.param == "postgresql":
        url = request.getfixturevalue("pg_url")
    else:
        url = MARIADB_URL
        try:
            create_engine(url).connect().close()
        except Exception as exc:  # pragma: no cover - depends on the machine
            pytest.skip(f"MariaDB not available: {exc}")
    engine = create_engine(url)
    amount = "NUMERIC(12, 2)"
    with engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TABLE {table} ("
                " doc_key VARCHAR(80) PRIMARY KEY,"
                " receipt VARCHAR(20) NOT NULL,"
                f" amount {amount} NOT NULL CHECK (amount < 100000),"
                " paid_at TIMESTAMP NULL,"
                " payer VARCHAR(200),"
                " ref VARCHAR(10),"
                " batch_no INTEGER)"
            )
        )
    try:
        yield url, table
    finally:
        with engine.begin() as conn:
            conn.execute(text(f"DROP TABLE {table}"))
        engine.dispose()


def sql_sink(url: str, table: str, **extra: Any) -> SqlSink:
    columns = {
        "doc_key": "idempotency_key",
        "receipt": "receipt",
        "amount": "amount",
        "paid_at": "occurred_at",
        "payer": "name",
        "ref": "reference",
        **extra,
    }
    section = {"name": "erp", "type": "sql", "url": url, "table": table, "key": "doc_key"}
    config = parse_config({"sinks": [{**section, "columns": columns}]}, environ={})
    return SqlSink(config.sinks[0])  # type: ignore[arg-type]


async def deliver_all(store: Store, sink: SqlSink, rounds: int = 10) -> None:
    worker = DeliveryWorker(store, {"erp": sink}, {"erp": FAST})
    try:
        for _ in range(rounds):
            await worker.run_once()
    finally:
        await worker.close()


def rows(url: str, table: str) -> list[Any]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return list(conn.execute(text(f"SELECT * FROM {table} ORDER BY receipt")))
    finally:
        engine.dispose()


async def test_upsert_writes_one_row_per_transaction_however_often_sent(
    store: Store, target: tuple[str, str]
) -> None:
    url, table = target
    store.record(
        [observed(payment(f"SSQL{i:06d}", f"{i + 1}00.50")) for i in range(3)],
        Sighting("callback", "callback"),
        lambda _t: ["erp"],
    )
    await deliver_all(store, sql_sink(url, table))
    assert {v.state for v in store.deliveries()} == {"delivered"}
    store.replay(ids=[v.id for v in store.deliveries()])  # replay everything: no-op rows
    store.replay(dead=True)
    with store.write() as conn:
        conn.execute(text("UPDATE deliveries SET state = 'pending'"))
    await deliver_all(store, sql_sink(url, table))
    found = rows(url, table)
    assert [r.receipt for r in found] == ["SSQL000000", "SSQL000001", "SSQL000002"]
    assert [Decimal(r.amount) for r in found] == [
        Decimal("100.50"),
        Decimal("200.50"),
        Decimal("300.50"),
    ]
    assert found[0].payer == "JANE DOE"
    assert found[0].doc_key == store.deliveries()[-1].idempotency_key
    assert store.deliveries()[-1].document_id == found[0].doc_key


async def test_refusals_are_dead_letters_with_the_databases_message(
    store: Store, target: tuple[str, str]
) -> None:
    url, table = target
    store.record(
        [
            observed(payment("SSQLBIG001", "250000.00")),  # CHECK (amount < 100000)
            observed(payment("SSQLLONG01", reference="A-REFERENCE-TOO-LONG")),
            observed(payment("SSQLOK0001")),
        ],
        Sighting("callback", "callback"),
        lambda _t: ["erp"],
    )
    await deliver_all(store, sql_sink(url, table))
    states = {v.transaction.receipt: v for v in store.deliveries()}
    assert states["SSQLOK0001"].state == "delivered"
    big = states["SSQLBIG001"]
    assert big.state == "dead"
    assert big.attempts == 1
    assert "the database refused it" in (big.last_error or "")
    assert "constraint" in (big.last_error or "").lower()
    long = states["SSQLLONG01"]
    if url.startswith("sqlite"):
        assert long.state == "delivered"  # SQLite does not enforce VARCHAR lengths
    else:
        assert long.state == "dead"
        assert long.attempts == 1
        assert "too long" in (long.last_error or "").lower()


async def test_a_value_the_column_type_refuses_is_a_dead_letter(
    store: Store, typed_target: tuple[str, str]
) -> None:
    url, table = typed_target
    store.record(
        [observed(payment("SSQLTYPE01"))], Sighting("callback", "callback"), lambda _t: ["erp"]
    )
    await deliver_all(store, sql_sink(url, table, batch_no="receipt"))  # text into INTEGER
    (view,) = store.deliveries()
    assert view.state == "dead"
    assert "the database refused it" in (view.last_error or "")


async def test_an_unreachable_database_is_retried(store: Store) -> None:
    store.record(
        [observed(payment("SSQLDOWN01"))], Sighting("callback", "callback"), lambda _t: ["erp"]
    )
    sink = sql_sink("postgresql+psycopg://nobody@127.0.0.1:9/erp", "erp_payments")
    worker = DeliveryWorker(store, {"erp": sink}, {"erp": RetryPolicy(max_attempts=5)})
    try:
        await worker.run_once()
    finally:
        await worker.close()
    (view,) = store.deliveries()
    assert view.state == "pending"
    assert "cannot reach the database" in (view.last_error or "")


def test_config_refuses_unknown_fields_and_an_unmapped_key() -> None:
    with pytest.raises(Exception, match="unknown fields"):
        sql_sink("sqlite://", "t", x="no_such_field")
    with pytest.raises(Exception, match="must be mapped"):
        parse_config(
            {
                "sinks": [
                    {
                        "name": "e",
                        "type": "sql",
                        "url": "sqlite://",
                        "table": "t",
                        "key": "id",
                        "columns": {"receipt": "receipt"},
                    }
                ]
            },
            environ={},
        )
