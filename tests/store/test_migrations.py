"""Migrations: opening a database brings it to the schema the code expects, on both backends."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from pesabridge.formats.base import Observation
from pesabridge.model import Direction, Entry, Transaction
from pesabridge.store import Sighting, Store, utcnow
from pesabridge.store.migrate import alembic_config
from pesabridge.store.schema import metadata


@pytest.fixture
def opened(db_url: str) -> Iterator[list[Store]]:
    stores: list[Store] = []
    yield stores
    for store in stores:
        store.close()


def _head() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


def _revision(store: Store) -> str | None:
    with store.engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def _payment(receipt: str) -> Observation:
    t = Transaction(
        provider="mpesa",
        account="600100",
        receipt=receipt,
        entry=Entry.PAYMENT,
        direction=Direction.CREDIT,
        amount=Decimal("10.00"),
        currency="KES",
        occurred_at=utcnow(),
    )
    return Observation(t, f"req-{receipt}", None, receipt.encode())


def test_the_migrated_schema_matches_the_code(store: Store) -> None:
    with store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        diffs = compare_metadata(context, metadata)
    assert diffs == []
    assert _revision(store) == _head()
    tables = set(inspect(store.engine).get_table_names())
    assert set(metadata.tables) <= tables


def test_opening_twice_is_idempotent_and_keeps_data(db_url: str, opened: list[Store]) -> None:
    first = Store.open(db_url)
    opened.append(first)
    first.record([_payment("SLK0000001")], Sighting("callback", "callback"), lambda _t: ["erp"])

    second = Store.open(db_url)  # e.g. `pesabridge worker` starting beside `serve`
    opened.append(second)

    assert _revision(second) == _head()
    status = second.status()
    assert (status["transactions"], status["deliveries"]) == (1, {"erp": {"pending": 1}})
    with second.engine.connect() as conn:
        versions = conn.execute(text("SELECT version_num FROM alembic_version")).all()
    assert [v[0] for v in versions] == [_head()]


def test_open_without_migrate_leaves_the_database_alone(db_url: str, opened: list[Store]) -> None:
    store = Store.open(db_url, migrate=False)
    opened.append(store)
    assert "transactions" not in inspect(store.engine).get_table_names()


_STARTER = r"""
import sys
from pesabridge.store import Store

print("ready", flush=True)
sys.stdin.readline()
store = Store.open(sys.argv[1])
print(store.status()["transactions"], flush=True)
store.close()
"""


def test_processes_starting_together_on_a_fresh_database(db_url: str) -> None:
    """Several `serve`/`worker` processes may start at once against an empty database."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _STARTER, db_url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    for proc in procs:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready"
    for proc in procs:
        assert proc.stdin is not None
        proc.stdin.write("go\n")
        proc.stdin.flush()
    outcomes = [proc.communicate(timeout=60) for proc in procs]

    assert [
        (proc.returncode, out.strip()) for proc, (out, _) in zip(procs, outcomes, strict=True)
    ] == [(0, "0")] * 4, "\n".join(err for _, err in outcomes)
    engine = create_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert context.get_current_revision() == _head()
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()
