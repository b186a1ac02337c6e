"""``pesabridge run``: the whole path in one process, stopped cleanly by SIGTERM."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

from pesabridge.devtools.backoffice import BackOfficeThread
from pesabridge.store import Store

from .helpers import free_port, wait_for

STATEMENT = "mpesa-statement/ORG_600977_Utility Account_Completed_20240507070000.csv"


def test_run_ingests_serves_delivers_and_stops_on_sigterm(
    db_url: str, samples_dir: Path, tmp_path: Path
) -> None:
    port = free_port()
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    log = tmp_path / "run.log"
    with BackOfficeThread() as backoffice:
        config = tmp_path / "pesabridge.yaml"
        config.write_text(
            json.dumps(
                {
                    "database": db_url,
                    "server": {"host": "127.0.0.1", "port": port},
                    "worker": {"poll_interval": 0.1},
                    "sources": [
                        {
                            "name": "portal",
                            "type": "folder",
                            "path": "inbox",
                            "poll_interval": 0.2,
                            "stable_for": 0.5,
                        },
                        {"name": "daraja", "type": "daraja-c2b"},
                    ],
                    "sinks": [{"name": "erp", "type": "http", "url": backoffice.url}],
                    "routes": [
                        {"from": ["portal", "daraja"], "to": ["erp"], "entries": ["payment"]}
                    ],
                }
            )
        )
        process = subprocess.Popen(
            [sys.executable, "-m", "pesabridge", "run", "-c", str(config)],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=tmp_path,
        )
        try:
            health = f"http://127.0.0.1:{port}/healthz"
            wait_for(lambda: urllib.request.urlopen(health).status == 200, 30, "the server")
            shutil.copy(samples_dir / STATEMENT, inbox / "statement.csv")
            body = (samples_dir / "daraja/c2b_confirmation_v1_hashed.json").read_bytes()
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/daraja/c2b/confirmation",
                data=body,
                headers={"Content-Type": "application/json"},
            )
            with urllib.request.urlopen(request) as answer:
                assert json.loads(answer.read()) == {"ResultCode": 0, "ResultDesc": "Success"}
            # five statement payments and one callback payment
            wait_for(lambda: len(backoffice.state.postings) == 6, 30, "six postings")
        finally:
            process.send_signal(signal.SIGTERM)
            code = process.wait(30)
        assert code == 0, log.read_text()[-3000:]
        assert (inbox / "done" / "statement.csv").exists()
    store = Store.open(db_url)
    try:
        assert store.status()["deliveries"] == {"erp": {"delivered": 6}}
    finally:
        store.close()
    assert "stopping" in log.read_text()
