"""Migration 0010: the ISO 8583 journal rows (attempt 0 by ``iso8583 exchange``) move out
of ``attempts`` into ``sink_exchanges`` and back on downgrade, on both backends; a ledger
migrated this way goes on delivering from the moved journal."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import insert, inspect, select

from pesabridge.store import Sighting, Store, exchanges, utcnow
from pesabridge.store.migrate import alembic_config, upgrade
from pesabridge.store.schema import attempts, sink_exchanges

from ..helpers import observed, payment

STATE = {
    "code": None,
    "mti": "0200",
    "phase": "reversing",
    "repeats": 1,
    "reversal_sent_at": "2026-11-28T08:00:05+00:00",
    "reversal_stan": 8,
    "reversals": 0,
    "rrn": "SMIGJRN001  ",
    "sent_at": "2026-11-28T08:00:00+00:00",
    "stan": 7,
}
TEXT = json.dumps(STATE, sort_keys=True)  # as pesabridge up to 0009 wrote it


@pytest.fixture
def old(db_url: str) -> Iterator[Store]:
    """A ledger at revision 0009 holding two deliveries: one with a journal row and a
    real attempt, one with a real attempt only."""
    store = Store.open(db_url, migrate=False)
    try:
        upgrade(store.engine, "0009")
        store.record(
            [observed(payment("SMIGJRN001")), observed(payment("SMIGJRN002"))],
            Sighting("callback", "callback"),
            lambda _t: ["core"],
        )
        first, second = sorted(v.id for v in store.deliveries())
        started = utcnow() - timedelta(minutes=5)
        common = {
            "started_at": started,
            "finished_at": started + timedelta(seconds=1),
            "response": None,
            "error": None,
            "request_summary": None,
            "unknown_outcome": False,
        }
        with store.write() as conn:
            conn.execute(
                insert(attempts),
                [
                    {
                        **common,
                        "delivery_id": first,
                        "number": 0,
                        "worker": "iso8583 exchange",
                        "outcome": "reversing",
                        "response": TEXT,
                        "unknown_outcome": True,
                        "request_summary": "0200 STAN 000007 RRN SMIGJRN001 sent ...",
                    },
                    {
                        **common,
                        "delivery_id": first,
                        "number": 1,
                        "worker": "w1",
                        "outcome": "retry",
                        "error": "no answer",
                        "unknown_outcome": True,
                    },
                    {
                        "delivery_id": second,
                        "number": 1,
                        "worker": "w1",
                        "outcome": "retry",
                        **common,
                    },
                ],
            )
        yield store
    finally:
        store.close()


def _attempts(store: Store) -> list[tuple[int, int, str]]:
    a = attempts.c
    with store.read() as conn:
        rows = conn.execute(select(a.delivery_id, a.number, a.worker).order_by(a.id)).all()
    return [(r.delivery_id, r.number, r.worker) for r in rows]


def test_upgrade_moves_the_journal_out_of_attempts(old: Store) -> None:
    first, second = sorted(v.id for v in old.deliveries())
    upgrade(old.engine)

    assert _attempts(old) == [(first, 1, "w1"), (second, 1, "w1")]
    with old.read() as conn:
        (row,) = conn.execute(select(sink_exchanges)).mappings().all()
        found, version = exchanges.load(conn, first)
        assert exchanges.load(conn, second) == (None, None)
    assert (row["delivery_id"], row["sink"], row["phase"], row["mti"]) == (
        first,
        "core",
        "reversing",
        "0200",
    )
    assert (row["stan"], row["rrn"], row["state"], row["version"]) == (7, "SMIGJRN001  ", TEXT, 1)
    assert row["created_at"] < row["updated_at"]
    assert found is not None
    assert version == 1
    assert (found.phase, found.reversal_stan, found.repeats) == ("reversing", 8, 1)

    # The moved journal is live: the compare-and-set continues from it.
    with old.write() as conn:
        assert exchanges.save(conn, first, found.but(phase="reversed"), version) == 2
        assert exchanges.save(conn, first, found.but(phase="posted"), version) is None
    detail = old.delivery(first)
    assert detail is not None
    assert [a.number for a in detail.attempts] == [1]
    assert detail.exchange is not None
    assert detail.exchange.phase == "reversed"


def test_downgrade_puts_the_journal_back_as_attempt_0(old: Store) -> None:
    first, second = sorted(v.id for v in old.deliveries())
    upgrade(old.engine)
    config = alembic_config()
    with old.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0009")

    assert "sink_exchanges" not in inspect(old.engine).get_table_names()
    assert sorted(_attempts(old)) == sorted(
        [(first, 0, "iso8583 exchange"), (first, 1, "w1"), (second, 1, "w1")]
    )
    a = attempts.c
    with old.read() as conn:
        back = conn.execute(select(attempts).where(a.number == 0)).mappings().one()
    assert (back["response"], back["outcome"], back["unknown_outcome"]) == (TEXT, "reversing", True)
    assert back["request_summary"] == (
        "0200 STAN 000007 RRN SMIGJRN001 sent 2026-11-28T08:00:00+00:00; "
        "reversing with STAN 000008 (1 repeats)"
    )

    upgrade(old.engine)  # and forward again
    assert [n for _, n, _ in _attempts(old)] == [1, 1]
    with old.read() as conn:
        assert exchanges.count(conn) == 1
