"""Reconciliation benchmark: a 1,000,000-row statement against 1,000,000 callbacks.

``make bench`` runs this. It builds, once per run, a SQLite ledger holding a generated
portal statement of N payments (cached in ``bench/out/``) and the callbacks of the same
payments with 1% anomalies injected: 0.4% of the callbacks lost, 0.2% repeated, 0.2%
with another amount, and forged callbacks for 0.2% of N. The ledger is built through
the store's bulk paths (``ingest_file`` for the statement; the callbacks' evidence rows
with ``connector.bulk_insert``, the disagreeing and forged ones with ``Store.record``),
is not timed, and is kept (``bench/out/recon-N-sS.pristine.db``; ``--rebuild`` makes it
again): each run reconciles a fresh copy. Then, each in its own child process so each
reports its own peak RSS:

* the **baseline**: the obvious set-based reading with bare ``sqlite3`` (the period's
  transactions joined to their sightings and counted, one grouped join, every row
  fetched) plus a bare ``csv.reader`` pass over the statement (for the balances);
* **reconcile**: ``run_reconciliation`` over the whole period with the statement file at
  hand, persisting days and exceptions. The child checks every anomaly was classified:
  backfilled = lost, unconfirmed = forged, discrepancy = altered, duplicates counted,
  no balance break.

Goal: reconcile under 30 s and under 500 MB peak RSS. Exit status: 0 PASS, 1 FAIL (a
goal missed), 2 wrong result.

    .venv/bin/python bench/reconcile.py                  # 1,000,000 rows
    .venv/bin/python bench/reconcile.py --rows 100000 --json
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import shutil
import sqlite3
import subprocess
import sys
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import fresh, peak_rss_mb, source_digest
from revision import commit_id

HERE = Path(__file__).resolve().parent
DEFAULT_WORKDIR = HERE / "out"
END = datetime(2024, 6, 30, 23, 59, 59)
SEED = 7
ACCOUNT = "600977"
MAX_SECONDS = 30.0
MAX_RSS_MB = 500.0


def statement_file(workdir: Path, rows: int, seed: int) -> Path:
    """A statement of ``rows`` payments (no charge rows), cached."""
    path = workdir / f"recon-statement-{rows}-s{seed}.csv"
    if path.exists():
        return path
    from pesabridge.devtools.statements import write_statement

    print(f"generating {path.name} ...", file=sys.stderr, flush=True)
    partial = path.with_suffix(".partial")
    write_statement(partial, rows, end=END, seed=seed, short_code=ACCOUNT, with_charges=False)
    partial.replace(path)
    return path


def kind_of(index: int) -> str:
    """Which anomaly the ``index``-th payment's callback gets (1% in all)."""
    slot = index % 1000
    if slot < 4:
        return "lost"
    if slot < 6:
        return "repeated"
    if slot < 8:
        return "altered"
    return "ok"


def build(path: Path, db: Path) -> dict[str, Any]:
    """The ledger: the statement ingested, then the callbacks' sightings (not timed).

    The statement goes first here only because that is the bulk path; the ledger ends
    the same as callbacks-first, except that the statement's balances are in it.
    """
    from pesabridge.formats.base import Observation
    from pesabridge.model import Counterparty, Direction, Entry, Transaction
    from pesabridge.pipeline import ingest_file
    from pesabridge.store import Sighting, Store, utcnow
    from pesabridge.store.connector import bind_time, bulk_insert
    from pesabridge.store.rows import fingerprint, from_minor, row_transaction
    from pesabridge.store.schema import evidence, transactions

    fresh(db)
    store = Store.open(f"sqlite:///{db}")
    started = time.perf_counter()
    summary = ingest_file(store, path, route=lambda t: ["erp"])
    if summary.error or summary.rejected:
        raise SystemExit(f"ingest failed: {summary.error or summary.rejected}")
    counts = {"lost": 0, "repeated": 0, "altered": 0, "forged": 0}
    altered: list[Observation] = []
    stamp = bind_time("sqlite")(utcnow())
    with store.write() as conn:
        rows = conn.execute(
            transactions.select().order_by(transactions.c.occurred_at, transactions.c.id)
        ).mappings()
        batch: list[tuple[Any, ...]] = []
        first = last = None
        for index, row in enumerate(rows):
            kind = kind_of(index)
            first = first or row["occurred_at"]
            last = row["occurred_at"]
            if kind == "lost":
                counts["lost"] += 1
                continue
            if kind == "altered":
                counts["altered"] += 1
                txn = replace(
                    row_transaction(row), amount=from_minor(row["amount_minor"] + 100, "KES")
                )
                altered.append(Observation(txn, f"req-a{index}", None, f"altered {index}".encode()))
                continue
            raw = json.dumps(
                {"TransID": row["receipt"], "TransAmount": row["amount_minor"]}
            ).encode()
            batch.append((row["id"], "callback", f"req-{index}", None, None,
                          fingerprint("callback", raw), raw, stamp))  # fmt: skip
            if kind == "repeated":
                counts["repeated"] += 1
                again = raw + b" "
                batch.append((row["id"], "callback", f"req-r{index}", None, None,
                              fingerprint("callback", again), again, stamp))  # fmt: skip
        bulk_insert(conn, evidence, ("transaction_id", "kind", "source", "file_id", "line",
                                     "fingerprint", "raw", "observed_at"), batch)  # fmt: skip
    callback = Sighting(kind="callback", origin="callback")
    store.record(altered, callback, lambda t: ["erp"])
    assert first is not None
    assert last is not None
    forged = []
    span = (last - first).total_seconds()
    for n in range(max(1, len(batch) // 500)):
        when = first + timedelta(seconds=span * (n + 0.5) / max(1, len(batch) // 500))
        txn = Transaction(
            provider="mpesa", account=ACCOUNT, receipt=f"FG{n:08d}", entry=Entry.PAYMENT,
            direction=Direction.CREDIT, amount=Decimal("4999.00"), currency="KES",
            occurred_at=when, counterparty=Counterparty.of("254700000001", "EVE MALLORY"),
            reference="INV-66666",
        )  # fmt: skip
        forged.append(Observation(txn, f"req-f{n}", None, f"forged {n}".encode()))
    store.record(forged, callback, lambda t: ["erp"])
    counts["forged"] = len(forged)
    store.close()
    return {
        "counts": counts,
        "file_id": summary.file_id,
        "first": first.astimezone(UTC).isoformat(),
        "last": last.astimezone(UTC).isoformat(),
        "build_seconds": round(time.perf_counter() - started, 1),
    }


def run_floor(path: Path, db: Path) -> dict[str, Any]:
    started, cpu = time.perf_counter(), time.process_time()
    conn = sqlite3.connect(db)
    rows = 0
    for _row in conn.execute(
        "SELECT t.id, t.receipt, t.entry, t.direction, t.amount_minor, t.currency, "
        "t.occurred_at, t.status, t.origin, t.related_receipt, "
        "sum(CASE WHEN e.kind = 'file' THEN 1 ELSE 0 END), "
        "sum(CASE WHEN e.kind = 'callback' THEN 1 ELSE 0 END) "
        "FROM transactions t JOIN evidence e ON e.transaction_id = t.id GROUP BY t.id"
    ):
        rows += 1
    conn.close()
    with path.open(newline="", encoding="utf-8") as stream:
        lines = sum(1 for _ in csv.reader(stream))
    return {"seconds": time.perf_counter() - started, "cpu_seconds": time.process_time() - cpu,
            "rows": rows, "lines": lines,
            "rss_mb": peak_rss_mb()}  # fmt: skip


def run_reconcile(path: Path, db: Path, built: dict[str, Any]) -> dict[str, Any]:
    from pesabridge.reconcile import run_reconciliation
    from pesabridge.store import Store

    zone_day = timedelta(hours=3)  # EAT
    first = (datetime.fromisoformat(built["first"]) + zone_day).date()
    last = (datetime.fromisoformat(built["last"]) + zone_day).date()
    store = Store.open(f"sqlite:///{db}")
    started, cpu = time.perf_counter(), time.process_time()
    report = run_reconciliation(
        store, ACCOUNT, first, last, statements={built["file_id"]: path}, trigger="bench"
    )
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    store.close()
    totals = {k: report.total(k) for k in (
        "matched", "backfilled", "unconfirmed", "discrepancy", "duplicate_callback",
        "balance_break", "awaiting_statement")}  # fmt: skip
    return {"seconds": seconds, "cpu_seconds": cpu, "rss_mb": peak_rss_mb(), "totals": totals,
            "open": report.open_exceptions, "days": len(report.days)}  # fmt: skip


def in_child(phase: str, path: Path, db: Path, built: dict[str, Any] | None) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", phase, "--file", str(path), "--db", str(db)]
    if built is not None:
        command += ["--built", json.dumps(built)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{phase} child failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def verify(built: dict[str, Any], result: dict[str, Any]) -> list[str]:
    counts, totals = built["counts"], result["totals"]
    expected = {
        "backfilled": counts["lost"],
        "unconfirmed": counts["forged"],
        "discrepancy": counts["altered"],
        "duplicate_callback": counts["repeated"],
        "balance_break": 0,
        "awaiting_statement": 0,
    }
    return [
        f"{name}: {totals.get(name)} found, {want} injected"
        for name, want in expected.items()
        if totals.get(name) != want
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="statement rows")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--json", action="store_true", help="also print one JSON result line")
    parser.add_argument("--rebuild", action="store_true", help="build the ledger again")
    parser.add_argument(
        "--child", choices=("build", "baseline", "reconcile"), help=argparse.SUPPRESS
    )
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--built", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        path, db = Path(args.file), Path(args.db)
        built = json.loads(args.built) if args.built else {}
        if args.child == "build":
            out = build(path, db)
        elif args.child == "baseline":
            out = run_floor(path, db)
        else:
            out = run_reconcile(path, db, built)
        print(json.dumps(out))
        return 0
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = statement_file(args.workdir, args.rows, args.seed)
    pristine = args.workdir / f"recon-{args.rows}-s{args.seed}.pristine.db"
    facts = pristine.with_suffix(".json")
    if args.rebuild or not pristine.exists() or not facts.exists():
        print(f"building the ledger ({args.rows:,} rows and callbacks) ...", file=sys.stderr)
        built = in_child("build", path, pristine, None)
        facts.write_text(json.dumps(built))
    built = json.loads(facts.read_text())
    db = args.workdir / f"recon-{args.rows}.db"
    fresh(db)
    shutil.copyfile(pristine, db)
    floor = in_child("baseline", path, db, None)
    result = in_child("reconcile", path, db, built)
    wrong = verify(built, result)
    ok = result["seconds"] < MAX_SECONDS and result["rss_mb"] < MAX_RSS_MB
    verdict = "WRONG" if wrong else "PASS" if ok else "FAIL"
    callbacks = (
        args.rows
        - built["counts"]["lost"]
        + built["counts"]["repeated"]
        + built["counts"]["forged"]
    )
    print(f"reconcile benchmark — commit {commit_id()} (src {source_digest()}), "
          f"Python {platform.python_version()}, SQLite {sqlite3.sqlite_version}")  # fmt: skip
    print(f"  statement rows {args.rows:,}; callbacks {callbacks:,}; injected {built['counts']}; "
          f"ledger built in {built['build_seconds']} s (not timed)")  # fmt: skip
    print(f"  baseline   {floor['seconds']:6.1f} s (CPU {floor['cpu_seconds']:5.1f} s)  "
          f"peak RSS {floor['rss_mb']:6.0f} MB")  # fmt: skip
    print(f"  reconcile  {result['seconds']:6.1f} s (CPU {result['cpu_seconds']:5.1f} s)  "
          f"peak RSS {result['rss_mb']:6.0f} MB  "
          f"{args.rows / result['seconds']:,.0f} rows/s  "
          f"x{result['seconds'] / floor['seconds']:.2f} of the baseline")  # fmt: skip
    print(
        f"  found {result['totals']}; {result['open']} open exceptions over {result['days']} days"
    )
    for problem in wrong:
        print(f"  WRONG: {problem}")
    print(f"  goal: under {MAX_SECONDS:.0f} s and {MAX_RSS_MB:.0f} MB -> {verdict}")
    if args.json:
        print(
            json.dumps({"baseline": floor, "reconcile": result, "built": built, "verdict": verdict})
        )
    return 2 if wrong else 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
