"""The file ledger contract: every statement file by content, its counts, header and rejects."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select

from pesabridge.formats.base import Reject, StatementHeader
from pesabridge.model import EAT
from pesabridge.store import Store, utcnow
from pesabridge.store import files as file_ledger
from pesabridge.store.schema import files, rejects

SHA = "9b" * 32


def start(store: Store, sha256: str = SHA, **changes: Any) -> int:
    fields: dict[str, Any] = {
        "sha256": sha256,
        "source": "sftp-safaricom",
        "name": "ORG_600100_Statement_20240506.csv",
        "path": "/outgoing/ORG_600100_Statement_20240506.csv",
        "size": 48213,
        "mtime": datetime(2024, 5, 6, 23, 0, tzinfo=EAT),
        "fmt": "mpesa-csv",
        "now": utcnow(),
    }
    fields.update(changes)
    with store.write() as conn:
        return file_ledger.start(conn, **fields)


def find(store: Store, sha256: str = SHA) -> file_ledger.FileRecord | None:
    with store.read() as conn:
        return file_ledger.find(conn, sha256)


def file_row(store: Store, file_id: int) -> dict[str, Any]:
    with store.read() as conn:
        return dict(conn.execute(select(files).where(files.c.id == file_id)).mappings().one())


def reject_rows(store: Store, file_id: int | None = None) -> list[dict[str, Any]]:
    with store.read() as conn:
        query = select(rejects).order_by(rejects.c.id)
        if file_id is not None:
            query = query.where(rejects.c.file_id == file_id)
        return [dict(r) for r in conn.execute(query).mappings()]


def progress(
    store: Store, file_id: int, rows_read: int, new: int, known: int, rejected: int
) -> None:
    with store.write() as conn:
        file_ledger.progress(
            conn, file_id, rows_read=rows_read, new=new, known=known, rejected=rejected
        )


def test_a_file_is_found_by_its_content(store: Store) -> None:
    assert find(store) is None
    started = utcnow()
    file_id = start(store, now=started)

    record = find(store)
    assert record is not None
    assert (record.id, record.sha256, record.source, record.name, record.status) == (
        file_id,
        SHA,
        "sftp-safaricom",
        "ORG_600100_Statement_20240506.csv",
        "ingesting",
    )
    assert (record.rows_read, record.new, record.known, record.rejected) == (0, 0, 0, 0)
    assert record.started_at == started
    assert record.finished_at is None
    assert record.error is None
    row = file_row(store, file_id)
    assert (row["size"], row["format"], row["path"]) == (
        48213,
        "mpesa-csv",
        "/outgoing/ORG_600100_Statement_20240506.csv",
    )
    assert row["mtime"] == datetime(2024, 5, 6, 20, 0, tzinfo=UTC)
    assert find(store, "00" * 32) is None


def test_the_same_content_under_another_name_is_the_same_file(store: Store) -> None:
    first = start(store)
    with store.write() as conn:
        file_ledger.finish(conn, first, status="failed", now=utcnow(), error="connection reset")
    again = start(store, name="copy.csv", path="/retry/copy.csv", source="folder")

    assert again == first
    record = find(store)
    assert record is not None
    assert (record.status, record.error, record.finished_at) == ("ingesting", None, None)
    assert (record.name, record.source) == ("copy.csv", "folder")
    other = start(store, "cd" * 32)
    assert other != first


def test_progress_accumulates_batches(store: Store) -> None:
    file_id = start(store)
    progress(store, file_id, 10_000, 9_990, 5, 5)
    progress(store, file_id, 2_345, 2_300, 40, 5)

    record = find(store)
    assert record is not None
    assert (record.rows_read, record.new, record.known, record.rejected) == (12_345, 12_290, 45, 10)


def test_finish_done_with_the_statement_header(store: Store) -> None:
    file_id = start(store)
    header = StatementHeader(
        source="ORG_600100_Statement_20240506.csv",
        provider="mpesa",
        account="600100",
        holder="ACME SCHOOL",
        period_start=datetime(2024, 5, 6, 0, 0, tzinfo=EAT),
        period_end=datetime(2024, 5, 6, 23, 59, 59, tzinfo=EAT),
        opening_balance=Decimal("1000.00"),
        closing_balance=Decimal("125430.50"),
        currency="KES",
    )
    finished = utcnow() + timedelta(seconds=1)
    with store.write() as conn:
        file_ledger.finish(conn, file_id, status="done", now=finished, header=header)

    record = find(store)
    assert record is not None
    assert (record.status, record.finished_at, record.error) == ("done", finished, None)
    stored = json.loads(file_row(store, file_id)["header"])
    assert stored == {
        "provider": "mpesa",
        "account": "600100",
        "holder": "ACME SCHOOL",
        "period_start": "2024-05-06T00:00:00+03:00",
        "period_end": "2024-05-06T23:59:59+03:00",
        "opening_balance": "1000.00",
        "closing_balance": "125430.50",
        "currency": "KES",
    }
    assert datetime.fromisoformat(stored["period_start"]) == datetime(2024, 5, 5, 21, tzinfo=UTC)
    assert store.status()["files"] == {"done": 1}


def test_finish_failed_keeps_the_reason(store: Store) -> None:
    file_id = start(store)
    with store.write() as conn:
        file_ledger.finish(conn, file_id, status="failed", now=utcnow(), error="line 7: bad CSV")
    record = find(store)
    assert record is not None
    assert (record.status, record.error) == ("failed", "line 7: bad CSV")
    assert file_row(store, file_id)["header"] is None
    assert store.status()["files"] == {"failed": 1}


def test_rejects_keep_line_field_reason_and_raw_bytes(store: Store) -> None:
    file_id = start(store)
    raw = b"SLK4H7R2PQ,06/05/2024 21:05:59,Pay Bill,1,5OO.00\r\n" + b"\xff\xfe"
    items = [
        Reject("statement.csv", 7, "Paid In", "'1,5OO.00' is not a number", raw),
        Reject("statement.csv", 9, None, "row has 4 columns, expected 11", b"a,b,c,d"),
        Reject("statement.csv", None, "header", "no Account Number in preamble"),
    ]
    created = utcnow()
    with store.write() as conn:
        file_ledger.add_rejects(conn, items, file_id, created)
        file_ledger.add_rejects(conn, [], file_id, created)  # nothing to quarantine
        file_ledger.add_rejects(
            conn, [Reject("ws_CO_1", None, "$.TransAmount", "missing")], None, created
        )

    kept = [
        (r["source"], r["line"], r["field"], r["reason"], bytes(r["raw"]), r["created_at"])
        for r in reject_rows(store, file_id)
    ]
    assert kept == [
        ("statement.csv", 7, "Paid In", "'1,5OO.00' is not a number", raw, created),
        ("statement.csv", 9, None, "row has 4 columns, expected 11", b"a,b,c,d", created),
        ("statement.csv", None, "header", "no Account Number in preamble", b"", created),
    ]
    callback_reject = reject_rows(store)[-1]
    assert (callback_reject["file_id"], callback_reject["field"]) == (None, "$.TransAmount")
    assert store.status()["rejects"] == 4


def test_reset_counts_before_a_reread_clears_counts_and_rejects(store: Store) -> None:
    file_id = start(store)
    other = start(store, "ef" * 32)
    progress(store, file_id, 100, 90, 5, 5)
    with store.write() as conn:
        file_ledger.add_rejects(conn, [Reject("a.csv", 3, "Amount", "bad")], file_id, utcnow())
        file_ledger.add_rejects(conn, [Reject("b.csv", 4, "Amount", "bad")], other, utcnow())

    with store.write() as conn:
        file_ledger.reset_counts(conn, file_id)

    record = find(store)
    assert record is not None
    assert (record.rows_read, record.new, record.known, record.rejected) == (0, 0, 0, 0)
    assert reject_rows(store, file_id) == []
    assert [r["source"] for r in reject_rows(store, other)] == ["b.csv"]  # other files untouched


def test_a_failed_write_leaves_no_trace(store: Store) -> None:
    """Counts and rejects commit with the batch or not at all."""
    file_id = start(store)
    try:
        with store.write() as conn:
            file_ledger.progress(conn, file_id, rows_read=10, new=9, known=0, rejected=1)
            file_ledger.add_rejects(conn, [Reject("a.csv", 3, "Amount", "bad")], file_id, utcnow())
            raise RuntimeError("crash mid-batch")
    except RuntimeError:
        pass
    record = find(store)
    assert record is not None
    assert record.rows_read == 0
    assert reject_rows(store, file_id) == []
