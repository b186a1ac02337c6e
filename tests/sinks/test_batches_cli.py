"""``pesabridge batches cut|list|show`` against a local drop folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from pesabridge.store import Sighting, Store

from ..helpers import observed, payment


def pesabridge(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pesabridge", *args], capture_output=True, timeout=60, check=False
    )


def test_cut_list_show(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = Store.open(url)
    store.record(
        [observed(payment(f"CLI{i:07d}", minutes=i)) for i in range(3)],
        Sighting("callback", "callback"),
        lambda _t: ["drop"],
    )
    store.close()
    config = tmp_path / "pesabridge.yaml"
    config.write_text(
        json.dumps(
            {
                "database": url,
                "sinks": [
                    {
                        "name": "drop",
                        "type": "file-drop",
                        "transport": "local",
                        "path": "out",
                        "schedule": "30 0 * * *",
                    }
                ],
            }
        )
    )
    c = str(config)
    dry = pesabridge("batches", "cut", "drop", "-c", c, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert b"would cut drop_600977_20240506_001.xml: 3 entries" in dry.stdout
    listed = pesabridge("batches", "list", "-c", c, "--json")
    assert json.loads(listed.stdout) == []
    done = pesabridge("batches", "cut", "drop", "-c", c)
    assert done.returncode == 0, done.stderr
    assert b"cut drop_600977_20240506_001.xml: 3 entries" in done.stdout
    [row] = json.loads(pesabridge("batches", "list", "-c", c, "--json").stdout)
    assert (row["state"], row["trigger"], row["entries"]) == ("cut", "manual", 3)
    shown = json.loads(pesabridge("batches", "show", str(row["id"]), "-c", c, "--json").stdout)
    assert len(shown["deliveries"]) == 3
    content = pesabridge("batches", "show", str(row["id"]), "-c", c, "--content").stdout
    assert content.startswith(b"<?xml")
    assert b"camt.053.001.02" in content
    again = pesabridge("batches", "cut", "drop", "-c", c)
    assert b"nothing due" in again.stdout
