"""Generated days with every kind of anomaly: each found and classified, nothing else
reported; clean days reconcile to zero exceptions. On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from sqlalchemy import select

from pesabridge.reconcile import list_day_summaries, list_exceptions, run_reconciliation
from pesabridge.store import Store
from pesabridge.store.schema import transactions

from .scenario import ACCOUNT, DAY, build_day


def _open(report_exceptions: list) -> dict[tuple[str, str | None], str]:  # type: ignore[type-arg]
    return {(e.kind, e.receipt): e.detail for e in report_exceptions}


def test_every_injected_anomaly_is_found_and_classified(store: Store, tmp_path: Path) -> None:
    day, statement, file_id = build_day(store, tmp_path)
    injected = day.anomalies

    report = run_reconciliation(store, ACCOUNT, DAY, DAY, statement=statement)

    found = _open(report.exceptions)
    (forged,) = injected.forged_callbacks
    (missing,) = injected.missing_statement_rows
    (altered,) = injected.amount_mismatches
    (misprinted,) = injected.broken_balances
    assert found.keys() >= {
        ("unconfirmed", forged),
        ("unconfirmed", missing),
        ("discrepancy", altered),
        ("balance_break", misprinted),
    }
    assert "amount" in found[("discrepancy", altered)]
    assert "misprinted" in found[("balance_break", misprinted)]
    # the row missing from the statement breaks the chain at the next row it lists
    chain_breaks = [e for e in report.exceptions if e.kind == "balance_break"]
    jump = [e for e in chain_breaks if "chain breaks here" in e.detail]
    assert len(jump) == 1
    missing_payment = next(p for p in day.payments if p.receipt == missing)
    assert jump[0].line is not None
    assert jump[0].amount is not None
    assert jump[0].amount < missing_payment.amount  # the payment less its charge
    # nothing else is open: duplicates, charges and the reversal need nobody
    kinds = sorted(e.kind for e in report.exceptions)
    assert kinds.count("unconfirmed") == 2
    assert kinds.count("discrepancy") == 1
    assert set(kinds) <= {"unconfirmed", "discrepancy", "balance_break"}
    # the statement's last balance still carries the missing row: reported once more
    assert {e.detail.split(":")[1].strip()[:8] for e in chain_breaks if e.line is None} <= {
        "the last"
    }

    # lost callbacks: backfilled (repaired, not open), marked in the ledger
    assert sorted(e.receipt for e in report.repaired) == sorted(injected.lost_callbacks)
    assert all(e.status == "repaired" for e in report.repaired)
    with store.read() as conn:
        origins = dict(
            conn.execute(
                select(transactions.c.receipt, transactions.c.origin).where(
                    transactions.c.entry == "payment"
                )
            ).all()
        )
    assert {origins[r] for r in injected.lost_callbacks} == {"backfill"}
    assert origins[injected.duplicate_callbacks[0]] == "callback"

    (summary,) = report.days
    assert summary.count("backfilled") == 2
    assert summary.count("duplicate_callback") == 1
    assert summary.count("unconfirmed") == 2
    assert summary.count("discrepancy") == 1
    # 40 payments - 2 lost - 1 missing from the statement, seen both ways
    assert summary.count("matched") == 37
    # the charges of the 39 listed payments and the reversal: statement only
    assert summary.count("statement_only") == 39 + 1
    assert summary.count("orphan") == 0
    assert summary.open_exceptions == len(report.exceptions)
    assert list_day_summaries(store, account=ACCOUNT) == report.days
    assert file_id > 0


def test_a_clean_day_gives_zero_exceptions(store: Store, tmp_path: Path) -> None:
    _day, statement, _file = build_day(store, tmp_path, anomalies=False, count=30)
    report = run_reconciliation(store, ACCOUNT, DAY, DAY, statement=statement)
    assert report.clean
    assert report.exceptions == []
    assert report.repaired == []
    (summary,) = report.days
    assert summary.count("matched") == 30
    assert summary.count("statement_only") == 30  # the charges
    assert set(summary.counts) == {"matched", "statement_only"}
    assert report.notes == []  # every running balance was checked, from the file
    # without the file, the balances the callbacks left empty cannot be checked: said so
    again = run_reconciliation(store, ACCOUNT, DAY, DAY)
    assert again.clean
    assert any("30 row(s) have no balance in the ledger" in note for note in again.notes)


def test_running_again_reports_the_same_exceptions_once(store: Store, tmp_path: Path) -> None:
    _day, statement, _file = build_day(store, tmp_path)
    first = run_reconciliation(store, ACCOUNT, DAY, DAY, statement=statement)
    second = run_reconciliation(store, ACCOUNT, DAY, DAY, statement=statement)
    assert [e.id for e in second.exceptions] == [e.id for e in first.exceptions]
    assert second.run_id != first.run_id
    assert len(list_exceptions(store, account=ACCOUNT, status="all")) == len(
        first.exceptions
    ) + len(first.repaired)


def test_a_late_callback_clears_its_unconfirmed_exception(store: Store, tmp_path: Path) -> None:
    """An account without callbacks for a while: callbacks that arrive after the
    statement are matched, and an exception that no longer holds is cleared."""
    from pesabridge.devtools.reconcile_days import callback_body, generate_day

    from .scenario import ingest_statement, receive_callbacks

    day = generate_day(DAY, 20, anomalies=False, seed=5)
    receive_callbacks(store, day.callbacks[:-1])
    statement = day.write_statement(tmp_path / "s.csv")
    ingest_statement(store, statement)
    report = run_reconciliation(store, ACCOUNT, DAY, DAY)
    assert report.clean
    assert len(report.repaired) == 1  # the last payment's callback had not come yet

    # now a callback for something the statement does not have: unconfirmed
    import json

    ghost = day.payments[0]
    bogus = callback_body(ghost, ACCOUNT) | {"TransID": "SKGHOST001"}
    receive_callbacks(store, [json.dumps(bogus).encode()])
    report = run_reconciliation(store, ACCOUNT, DAY, DAY)
    ((kind, receipt),) = [(e.kind, e.receipt) for e in report.exceptions]
    assert (kind, receipt) == ("unconfirmed", "SKGHOST001")


def test_callbacks_outside_any_statement_await_one(store: Store, tmp_path: Path) -> None:
    from pesabridge.devtools.reconcile_days import generate_day

    from .scenario import receive_callbacks

    day = generate_day(date(2024, 5, 7), 12, anomalies=False)
    receive_callbacks(store, day.callbacks)
    report = run_reconciliation(store, ACCOUNT, date(2024, 5, 7), date(2024, 5, 7))
    assert report.clean
    (summary,) = report.days
    assert summary.count("awaiting_statement") == 12
    assert any("no ingested statement" in note for note in report.notes)


def test_a_reversal_without_its_original_is_an_orphan(store: Store, tmp_path: Path) -> None:
    """The day's own reversal finds its payment; one quoting an unknown receipt does
    not, and neither does a charge whose payment is not in the ledger."""
    from dataclasses import replace

    from pesabridge.devtools.reconcile_days import generate_day, write_rows

    from .scenario import ingest_statement

    day = generate_day(DAY, 12, seed=3)
    rows = list(day.rows)
    (index,) = [i for i, r in enumerate(rows) if r.reason == "Reversal"]
    rows[index] = replace(rows[index], linked="SKNOSUCH01", details="Reversal of SKNOSUCH01")
    path = tmp_path / "s.csv"
    write_rows(path, rows, DAY, DAY, ACCOUNT, day.opening)
    ingest_statement(store, path)
    report = run_reconciliation(store, ACCOUNT, DAY, DAY, statement=path)
    (orphan,) = [e for e in report.exceptions if e.kind == "orphan"]
    assert orphan.receipt == day.anomalies.reversal_receipts[0]
    assert "SKNOSUCH01" in orphan.detail
    assert orphan.receipt not in {e.receipt for e in report.repaired}  # never "lost"
