"""``pesabridge reconcile``: exit status, CSV and HTML reports, resolving exceptions
(audited, and never reported again), and the run after ``pesabridge ingest``."""

from __future__ import annotations

import csv
import io
from pathlib import Path

from sqlalchemy import select
from typer.testing import CliRunner

from pesabridge.cli import app
from pesabridge.reconcile import list_exceptions
from pesabridge.store import Store
from pesabridge.store.schema import recon_resolutions, recon_runs

from .scenario import ACCOUNT, DAY, build_day, receive_callbacks

runner = CliRunner()


def _reconcile(url: str, *args: str) -> tuple[int, str]:
    result = runner.invoke(
        app,
        ["reconcile", "--db", url, "--account", ACCOUNT, "--from", str(DAY), *args],
    )
    return result.exit_code, result.stdout


def test_exit_status_is_zero_only_when_nothing_is_open(
    db_url: str, store: Store, tmp_path: Path
) -> None:
    _day, statement, _file = build_day(store, tmp_path, anomalies=False, count=10)
    code, out = _reconcile(db_url, "--statement", str(statement))
    assert code == 0, out
    assert "no open exceptions" in out

    forged = (
        b'{"TransID": "SKFORGED01", "TransTime": "20240506120000",'
        b' "TransAmount": "50.00", "BusinessShortCode": "600977"}'
    )
    receive_callbacks(store, [forged])
    code, out = _reconcile(db_url)
    assert code == 1
    assert "SKFORGED01" in out
    assert "unconfirmed" in out


def test_bad_arguments_exit_2(db_url: str, tmp_path: Path) -> None:
    assert runner.invoke(app, ["reconcile", "--db", db_url, "--from", "2024-05-06"]).exit_code == 2
    code, _ = _reconcile(db_url, "--to", "2024-05-01")
    assert code == 2
    code, _ = _reconcile(db_url, "--format", "pdf")
    assert code == 2
    result = runner.invoke(
        app,
        ["reconcile", "--db", db_url, "--account", ACCOUNT, "--from", "06-05-2024"],
    )
    assert result.exit_code == 2
    assert "is not a date" in result.stderr
    code, _ = _reconcile(db_url, "--statement", str(tmp_path / "absent.csv"))
    assert code == 2


def test_csv_and_html_reports(db_url: str, store: Store, tmp_path: Path) -> None:
    day, statement, _file = build_day(store, tmp_path)
    csv_path, html_path = tmp_path / "r.csv", tmp_path / "r.html"
    code, _ = _reconcile(
        db_url, "--statement", str(statement), "--format", "csv", "-o", str(csv_path)
    )
    assert code == 1
    rows = list(csv.DictReader(io.StringIO(csv_path.read_text())))
    summary = {r["outcome"]: int(r["count"]) for r in rows if r["section"] == "summary"}
    assert summary["matched"] == 37
    assert summary["backfilled"] == 2
    exceptions = [r for r in rows if r["section"] == "exception"]
    assert {(r["outcome"], r["receipt"]) for r in exceptions} >= {
        ("unconfirmed", day.anomalies.forged_callbacks[0]),
        ("discrepancy", day.anomalies.amount_mismatches[0]),
        ("backfilled", day.anomalies.lost_callbacks[0]),
    }
    # the same report on stdout
    code, out = _reconcile(db_url, "--format", "csv")
    assert out.startswith("section,provider,account,day,outcome")

    code, _ = _reconcile(db_url, "--format", "html", "-o", str(html_path))
    assert code == 1
    html = html_path.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html
    assert day.anomalies.forged_callbacks[0] in html
    assert "open exception(s)" in html
    assert "@media print" in html


def test_resolving_stops_an_exception_reappearing(
    db_url: str, store: Store, tmp_path: Path
) -> None:
    day, statement, _file = build_day(store, tmp_path)
    code, _ = _reconcile(db_url, "--statement", str(statement))
    assert code == 1
    opened = list_exceptions(store, account=ACCOUNT)
    forged = next(e for e in opened if e.receipt == day.anomalies.forged_callbacks[0])

    result = runner.invoke(
        app,
        ["reconcile", "resolve", str(forged.id), "--db", db_url,
         "--comment", "Safaricom: no such transaction; caller blocked", "--user", "akinyi"],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    again = runner.invoke(
        app, ["reconcile", "resolve", str(forged.id), "--db", db_url, "--comment", "twice"]
    )
    assert again.exit_code == 2
    assert "resolved, not open" in again.stderr

    code, out = _reconcile(db_url)
    assert forged.receipt not in out
    still = list_exceptions(store, account=ACCOUNT)
    assert forged.id not in {e.id for e in still}
    assert len(still) == len(opened) - 1
    (resolved,) = list_exceptions(store, account=ACCOUNT, status="resolved")
    assert (resolved.resolved_by, resolved.comment) == (
        "akinyi",
        "Safaricom: no such transaction; caller blocked",
    )
    with store.read() as conn:
        audit = conn.execute(select(recon_resolutions)).all()
    assert [(a.exception_id, a.by_user, a.action) for a in audit] == [
        (forged.id, "akinyi", "resolve")
    ]

    for e in still:
        assert (
            runner.invoke(
                app, ["reconcile", "resolve", str(e.id), "--db", db_url, "--comment", "checked"]
            ).exit_code
            == 0
        )
    code, out = _reconcile(db_url)
    assert code == 0, out
    listing = runner.invoke(
        app, ["reconcile", "exceptions", "--db", db_url, "--status", "resolved"]
    )
    assert listing.exit_code == 0
    assert "akinyi" in listing.stdout


def test_ingest_reconciles_the_days_of_the_statement(
    db_url: str, store: Store, tmp_path: Path
) -> None:
    from pesabridge.devtools.reconcile_days import generate_day

    day = generate_day(DAY, 12)
    receive_callbacks(store, day.callbacks)
    statement = day.write_statement(tmp_path / "ORG_600977_statement.csv")
    result = runner.invoke(app, ["ingest", "--db", db_url, str(statement)])
    assert result.exit_code == 0, result.output
    assert f"reconciled {ACCOUNT} {DAY} to {DAY}" in result.stdout
    assert "2 backfilled" in result.stdout
    with store.read() as conn:
        (run,) = conn.execute(select(recon_runs)).all()
    assert (run.trigger, run.account, run.period_start, run.period_end) == (
        "ingest",
        ACCOUNT,
        DAY,
        DAY,
    )
    assert run.open_exceptions >= 4
