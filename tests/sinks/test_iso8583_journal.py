"""The ISO 8583 sink's journal lives in ``sink_exchanges``, not among the attempts: the
attempt history (CLI, dashboard, store) shows only what workers did, and
``pesabridge deliveries show`` prints where the exchange with the host stands on a line
of its own."""

from __future__ import annotations

import os
import subprocess
import sys

from sqlalchemy import select

from pesabridge.devtools.iso8583_host import HostRule
from pesabridge.store import Store
from pesabridge.store.schema import attempts, sink_exchanges

from .iso8583_support import deliver_all, financial, iso_sink, net, record, running_host


def show(db_url: str, delivery_id: int) -> str:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pesabridge",
            "deliveries",
            "show",
            str(delivery_id),
            "--db",
            db_url,
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


async def test_a_reversed_request_shows_its_exchange_and_no_attempt_0(
    store: Store, db_url: str
) -> None:
    record(store, "SISOJRN001")
    async with running_host() as host:
        host.add_rule(HostRule(mode="silent", mtis=("0200",)))  # posted; the 0210 is lost
        sink = iso_sink(host.port, store, message={"mti": "request"})
        await deliver_all(store, sink)
    assert financial(host, "SISOJRN001") == ["0200", "0420", "0200"]
    assert net(host) == {"SISOJRN001": 1}
    (view,) = store.deliveries()
    assert view.state == "delivered"

    with store.read() as conn:
        numbers = conn.execute(select(attempts.c.number, attempts.c.worker)).all()
        journal = conn.execute(select(sink_exchanges)).mappings().one()
    assert numbers
    assert all(number >= 1 for number, _ in numbers), numbers
    assert "iso8583 exchange" not in {worker for _, worker in numbers}
    assert (journal["delivery_id"], journal["sink"], journal["phase"]) == (
        view.id,
        "core",
        "posted",
    )
    assert (journal["mti"], journal["rrn"].strip()) == ("0200", "SISOJRN001")

    detail = store.delivery(view.id)
    assert detail is not None
    assert [a.number for a in detail.attempts] == list(range(1, len(detail.attempts) + 1))
    assert detail.exchange is not None
    assert detail.exchange.exchange.reversals == 1  # the first 0200 was reversed

    text = show(db_url, view.id)
    assert "attempt 0" not in text
    assert "attempt 1 " in text
    exchange_lines = [line for line in text.splitlines() if line.startswith("ISO 8583 exchange:")]
    assert len(exchange_lines) == 1, text
    assert exchange_lines[0].startswith("ISO 8583 exchange: posted (updated ")
    assert "outcome unknown" not in exchange_lines[0]
    assert f"0200 STAN {journal['stan']:06} RRN SISOJRN001" in text
    assert "last code 00" in text


async def test_an_unanswered_advice_shows_an_unknown_outcome(store: Store, db_url: str) -> None:
    record(store, "SISOJRN002")
    async with running_host() as host:
        host.add_rule(HostRule(mode="silent", times=10))  # every answer lost
        sink = iso_sink(host.port, store, repeats=0)
        await deliver_all(store, sink, rounds=1)
    (view,) = store.deliveries()
    assert view.state == "pending"
    text = show(db_url, view.id)
    assert "attempt 0" not in text
    line = next(x for x in text.splitlines() if x.startswith("ISO 8583 exchange:"))
    assert line.startswith("ISO 8583 exchange: sent ")
    assert "outcome unknown" in line
    assert "0220 STAN" in text
