"""A worker killed with SIGKILL mid-delivery loses nothing and doubles nothing."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from pesabridge.devtools.backoffice import BackOfficeThread, Rule
from pesabridge.store import Sighting, Store

from .helpers import observed, payment, start_worker, wait_for


def test_sigkilled_worker_loses_nothing(db_url: str, tmp_path: Path) -> None:
    store = Store.open(db_url)
    receipts = [f"SGKILL{i:04d}" for i in range(20)]
    store.record(
        [observed(payment(r)) for r in receipts],
        Sighting("callback", "callback"),
        lambda _t: ["erp"],
    )
    log = tmp_path / "worker.log"
    with BackOfficeThread() as backoffice:
        slow = Rule(status=200, times=10_000, delay=1.0)
        backoffice.add_rule(slow)
        config = tmp_path / "pesabridge.yaml"
        config.write_text(
            json.dumps(
                {
                    "database": db_url,
                    "worker": {"batch": 5, "lease_seconds": 2, "poll_interval": 0.1},
                    "sinks": [
                        {
                            "name": "erp",
                            "type": "http",
                            "url": backoffice.url,
                            "backoff_base": 0.1,
                            "timeout": {"connect": 1, "read": 1.5},
                        }
                    ],
                }
            )
        )
        first = start_worker(config, log)
        try:
            wait_for(lambda: backoffice.state.requests >= 3, 20, "the first worker's requests")
        finally:
            os.kill(first.pid, signal.SIGKILL)
            first.wait(10)
        in_flight = store.status()["deliveries"]["erp"].get("in_flight", 0)
        assert in_flight >= 1, "the kill should have left leased deliveries behind"
        slow.times = 0  # the back office recovers
        second = start_worker(config, log)
        try:
            wait_for(
                lambda: store.status()["deliveries"]["erp"] == {"delivered": 20},
                60,
                "every delivery to be delivered",
            )
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(20) == 0, log.read_text()[-3000:]
        time.sleep(1.2)  # requests the killed worker left on the server complete
        postings = dict(backoffice.state.postings)
    delivered = store.deliveries(state="delivered", limit=100)
    assert {v.transaction.receipt for v in delivered} == set(receipts)
    assert set(postings) == {v.idempotency_key for v in delivered}
    assert len(postings) == 20
    # the leased ones were retried after the lease lapsed, not lost
    assert max(v.attempts for v in delivered) >= 2
    store.close()
