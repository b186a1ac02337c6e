"""``pesabridge worker`` killed with SIGKILL mid-upload: after a restart there is exactly one
file on the server, with the batch's bytes, and every delivery in it is delivered."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

from pesabridge.store import Sighting, Store
from pesabridge.store import batches as db
from tests.fixtures.servers import PASSWORD, USER, FileServer

from ..helpers import observed, payment, start_worker, wait_for


def test_sigkilled_worker_mid_upload_leaves_one_file(
    db_url: str, tmp_path: Path, sftp_server: FileServer
) -> None:
    store = Store.open(db_url)
    receipts = [f"KILL{i:06d}" for i in range(5)]
    store.record(
        [observed(payment(r, minutes=i)) for i, r in enumerate(receipts)],
        Sighting("callback", "callback"),
        lambda _t: ["bank"],
    )
    config = tmp_path / "pesabridge.yaml"
    config.write_text(
        json.dumps(
            {
                "database": db_url,
                "worker": {"lease_seconds": 2, "poll_interval": 0.1},
                "sinks": [
                    {
                        "name": "bank",
                        "type": "file-drop",
                        "transport": "sftp",
                        "host": sftp_server.host,
                        "port": sftp_server.port,
                        "user": USER,
                        "password": PASSWORD,
                        "known_hosts": str(sftp_server.extra["known_hosts"]),
                        "timeout": 10,
                        "every": 5,
                        "check_interval": 0.2,
                        "backoff_base": 0.2,
                    }
                ],
            }
        )
    )
    log = tmp_path / "worker.log"
    sftp_server.knobs.upload_delay = 3.0  # the first upload hangs in its write
    first = start_worker(config, log)
    try:
        wait_for(lambda: sftp_server.knobs.uploads >= 1, 30, "the upload to begin")
    finally:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
    assert store.status()["deliveries"]["bank"] == {"in_flight": 5}
    assert "bank_600977_20240506_001.xml" not in os.listdir(sftp_server.root)
    with store.read() as conn:
        [cut] = db.list_batches(conn, sink="bank")
    assert cut.state == "cut"
    sftp_server.knobs.upload_delay = 0.0
    second = start_worker(config, log)
    try:
        wait_for(
            lambda: store.status()["deliveries"]["bank"] == {"delivered": 5},
            60,
            "every delivery to be delivered",
        )
    finally:
        second.send_signal(signal.SIGTERM)
        assert second.wait(20) == 0, log.read_text()[-3000:]
    with store.read() as conn:
        found = db.get_batch(conn, cut.id)
        assert len(db.list_batches(conn, sink="bank")) == 1
    assert found is not None
    batch, members = found
    assert sorted(os.listdir(sftp_server.root)) == ["bank_600977_20240506_001.xml"]
    assert (sftp_server.root / batch.file_name).read_bytes() == batch.content
    assert batch.state == "uploaded"
    assert batch.attempts >= 2
    assert len(members) == 5
    store.close()
