"""Ingesting statement files: once per content, rows committed in batches, rejects kept."""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select

from pesabridge.devtools.statements import write_statement
from pesabridge.model import Transaction
from pesabridge.pipeline import ingest_file
from pesabridge.store import Store
from pesabridge.store.schema import deliveries, evidence, files, rejects, transactions

STATEMENT = "mpesa-statement/ORG_600977_Utility Account_Completed_20240507070000.csv"
STATEMENT_XLSX = STATEMENT.replace(".csv", ".xlsx")


def to_erp(_txn: Transaction) -> list[str]:
    return ["erp"]


def count(store: Store, table) -> int:  # type: ignore[no-untyped-def]
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def test_statement_ingested_once_by_content(
    store: Store, samples_dir: Path, tmp_path: Path
) -> None:
    path = tmp_path / "statement.csv"
    shutil.copy(samples_dir / STATEMENT, path)
    first = ingest_file(store, path, route=to_erp)
    assert (first.format, first.rows_read, first.new, first.known, first.rejected) == (
        "mpesa-statement",
        12,
        12,
        0,
        0,
    )
    assert count(store, deliveries) == 12
    again = ingest_file(store, path, route=to_erp)
    assert again.skipped
    renamed = tmp_path / "renamed.csv"
    shutil.copy(path, renamed)
    assert ingest_file(store, renamed, route=to_erp).skipped
    assert count(store, transactions) == 12
    assert count(store, evidence) == 12
    with store.read() as conn:
        header = json.loads(conn.execute(select(files.c.header)).scalar_one())
    assert header["account"] == "600977"
    assert header["opening_balance"] == "12500.00"
    assert header["closing_balance"] == "19201.65"


def test_same_statement_as_xlsx_adds_evidence_not_transactions(
    store: Store, samples_dir: Path
) -> None:
    ingest_file(store, samples_dir / STATEMENT, route=to_erp)
    xlsx = ingest_file(store, samples_dir / STATEMENT_XLSX, route=to_erp)
    assert (xlsx.new, xlsx.known, xlsx.conflicting) == (0, 12, 0)
    assert count(store, transactions) == 12
    assert count(store, evidence) == 24
    assert count(store, deliveries) == 12


def test_bad_rows_are_quarantined_and_good_rows_kept(
    store: Store, samples_dir: Path, tmp_path: Path
) -> None:
    lines = (samples_dir / STATEMENT).read_text(encoding="utf-8").splitlines()
    # line 12 (1-based): a date that does not exist
    receipt, _completed, rest = lines[11].split(",", 2)
    lines[11] = f"{receipt},31-02-2024 10:00:00,{rest}"
    broken = tmp_path / "ORG_600977_broken.csv"
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    summary = ingest_file(store, broken, route=to_erp)
    assert (summary.new, summary.rejected) == (11, 1)
    (reject,) = summary.rejects
    assert (reject.source, reject.line, reject.field) == (broken.name, 12, "Completion Time")
    with store.read() as conn:
        row = conn.execute(select(rejects)).mappings().one()
    assert row["line"] == 12
    assert row["field"] == "Completion Time"
    assert b"31-02-2024" in row["raw"]


def test_interrupted_ingest_resumes_without_duplicates(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    rows = write_statement(path, 50, end=datetime(2024, 5, 6, 18, 0))
    seen = 0

    def crash_midway(_txn: Transaction) -> list[str]:
        nonlocal seen
        seen += 1
        if seen == 35:
            raise RuntimeError("power cut")
        return ["erp"]

    failed = ingest_file(store, path, route=crash_midway, batch_size=20)
    assert failed.error is not None
    assert "power cut" in failed.error
    assert count(store, transactions) == 20  # the first batch was committed
    with store.read() as conn:
        assert conn.execute(select(files.c.status)).scalar_one() == "failed"
    resumed = ingest_file(store, path, route=to_erp, batch_size=20)
    assert resumed.error is None
    assert (resumed.new, resumed.known) == (rows - 20, 20)
    assert count(store, transactions) == rows
    assert count(store, deliveries) == rows
    assert count(store, evidence) == rows  # the replayed first batch added no evidence
    with store.read() as conn:
        status, new, known = conn.execute(select(files.c.status, files.c.new, files.c.known)).one()
    assert (status, new, known) == ("done", rows - 20, 20)


def test_unknown_format_is_an_error_not_a_crash(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "notes.csv"
    path.write_text("hello,world\n1,2\n")
    summary = ingest_file(store, path, route=to_erp)
    assert summary.error is not None
    assert "no known format recognises this file" in summary.error
    assert count(store, transactions) == 0


@pytest.mark.parametrize("fmt", ["mpesa-statement", "auto"])
def test_format_can_be_forced_or_detected(store: Store, samples_dir: Path, fmt: str) -> None:
    summary = ingest_file(store, samples_dir / STATEMENT_XLSX, fmt=fmt, route=to_erp)
    assert summary.new == 12
