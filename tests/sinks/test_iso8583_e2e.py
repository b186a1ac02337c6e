"""End to end through the outbox: ``pesabridge worker`` processes with an iso8583 sink
posting to the real host — every transaction booked exactly once net, also when the
worker is killed with SIGKILL while its requests' answers are outstanding."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

from pesabridge.devtools.iso8583_host import HostRule, Iso8583HostThread
from pesabridge.store import Sighting, Store

from ..helpers import observed, payment, start_worker, wait_for


def write_config(path: Path, db_url: str, port: int, **sink: Any) -> Path:
    path.write_text(
        json.dumps(
            {
                "database": db_url,
                "worker": {"batch": 8, "lease_seconds": 2, "poll_interval": 0.1},
                "sinks": [
                    {
                        "name": "core",
                        "type": "iso8583",
                        "host": "127.0.0.1",
                        "port": port,
                        "backoff_base": 0.1,
                        "backoff_cap": 0.5,
                        "reconnect_base": 0.1,
                        **sink,
                    }
                ],
            }
        )
    )
    return path


def record_payments(store: Store, receipts: list[str]) -> None:
    """One callback payment per receipt, each routed to the ISO 8583 sink ``core``."""
    store.record(
        [observed(payment(r)) for r in receipts],
        Sighting("callback", "callback"),
        lambda _t: ["core"],
    )


def all_delivered(store: Store, count: int) -> bool:
    return store.status()["deliveries"].get("core") == {"delivered": count}


def test_a_worker_posts_every_transaction_once_through_lost_answers(
    db_url: str, tmp_path: Path
) -> None:
    store = Store.open(db_url)
    receipts = [f"SISOE2E{i:03d}" for i in range(40)]
    record_payments(store, receipts)
    log = tmp_path / "worker.log"
    with Iso8583HostThread() as host:
        host.add_rule(HostRule(mode="silent", times=3, mtis=("0200",)))  # booked, unanswered
        host.add_rule(HostRule(mode="decline", code="91", times=2, mtis=("0200",)))
        host.add_rule(HostRule(mode="drop", times=1, mtis=("0200",)))
        config = write_config(
            tmp_path / "pesabridge.yaml",
            db_url,
            host.port,
            message={"mti": "request"},
            response_timeout=0.5,
        )
        worker = start_worker(config, log)
        try:
            wait_for(lambda: all_delivered(store, 40), 60, "every delivery")
        finally:
            worker.send_signal(signal.SIGTERM)
            assert worker.wait(20) == 0, log.read_text()[-3000:]
        net = host.state.net()
    assert net == dict.fromkeys(receipts, 1)
    reversals = sum(1 for m in host.state.messages if m["t"] == "0420")
    assert reversals >= 4  # three lost answers and the dropped connection's message
    store.close()


def test_a_request_outstanding_when_the_worker_dies_is_reversed_after_restart(
    db_url: str, tmp_path: Path
) -> None:
    store = Store.open(db_url)
    receipts = [f"SISOKILL{i:02d}" for i in range(5)]
    record_payments(store, receipts)
    log = tmp_path / "worker.log"
    with Iso8583HostThread() as host:
        lost = HostRule(mode="silent", times=10**6, mtis=("0200",))  # booked, never answered
        host.add_rule(lost)
        config = write_config(
            tmp_path / "pesabridge.yaml",
            db_url,
            host.port,
            message={"mti": "request"},
            response_timeout=30,
        )
        first = start_worker(config, log)
        try:
            wait_for(
                lambda: sum(1 for m in host.state.messages if m["t"] == "0200") == 5,
                30,
                "the first worker's five requests",
            )
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.wait(10)
        assert host.state.net() == dict.fromkeys(receipts, 1)  # posted; nobody knows
        lost.times = 0  # the host answers again
        second = start_worker(config, log)
        try:
            wait_for(lambda: all_delivered(store, 5), 60, "every delivery after the restart")
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(20) == 0, log.read_text()[-3000:]
        trails = {r: [mti for mti, _ in host.state.trail(r)] for r in receipts}
        net = host.state.net()
    # the restarted worker found the journal: reversal first, then the original again
    assert trails == {key: ["0200", "0420", "0200"] for key in receipts}
    assert net == dict.fromkeys(receipts, 1)
    store.close()
