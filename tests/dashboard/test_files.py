"""The Files page and reject downloads: errors with line and field, numbers masked for
roles that see them masked, cells safe for spreadsheets."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from sqlalchemy import select

from pesabridge.pipeline import ingest_file
from pesabridge.store import Store
from pesabridge.store.schema import files

from . import seed
from .serving import login


def test_rejects_download_with_their_errors(base: str, seeded: Store, tmp_path: Path) -> None:
    good = {
        "provider": "mpesa",
        "account": "600100",
        "receipt": "SLK2000001",
        "entry": "payment",
        "direction": "credit",
        "amount": "10.00",
        "currency": "KES",
        "occurred_at": "2024-05-06T09:00:00Z",
    }
    bad = {
        **good,
        "receipt": "SLK2000002",
        "amount": "=1+1",
        "counterparty": {"msisdn": "254799887766"},
    }
    path = tmp_path / "day.jsonl"
    path.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    summary = ingest_file(seeded, path, fmt="jsonl", source="inbox", route=lambda _t: [])
    assert (summary.new, summary.rejected) == (1, 1)

    viewer = login(base, "victor", seed.PASSWORDS["victor"])
    page = viewer.get(f"{base}/ui/files").text
    assert "day.jsonl" in page
    assert "1 (CSV)" in page
    with seeded.read() as conn:
        file_id = conn.execute(select(files.c.id)).scalar_one()
    answer = viewer.get(f"{base}/ui/files/{file_id}/rejects.csv")
    assert answer.headers["content-disposition"] == 'attachment; filename="rejects-day.jsonl.csv"'
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert len(rows) == 1
    assert rows[0]["line"] == "2"
    assert rows[0]["field"] == "amount"
    assert "2547****7766" in rows[0]["raw"]
    assert "254799887766" not in answer.text
    admin = login(base, "admin", seed.PASSWORDS["admin"])
    assert "254799887766" in admin.get(f"{base}/ui/files/{file_id}/rejects.csv").text
    assert viewer.get(f"{base}/ui/files/999/rejects.csv").status_code == 404
