"""Ingest benchmark: the pipeline (parse -> ledger -> outbox) against a floor, on SQLite.

``make bench`` runs this. It generates a portal-style M-Pesa statement once (cached in
``bench/out/``), then measures, each in its own child process so each reports its own
peak RSS:

* the **floor**: bare ``csv.reader`` over the same file plus an ``executemany`` INSERT
  of every row (13 columns and the identity) into a fresh SQLite table keyed on the
  identity, same pragmas as the ledger (WAL, synchronous=NORMAL), committed every
  10,000 rows;
* the **pipeline**: ``ingest_file`` into a fresh ledger opened with ``Store.open``,
  every transaction routed to one sink, so each row also gets one outbox row; the child
  then checks the ledger holds exactly N transactions and N outbox rows.

Goal: pipeline rows/s >= 0.7 x floor rows/s, and pipeline peak RSS < 200 MB.
Exit status: 0 PASS, 1 FAIL (goal missed), 2 wrong result (a child failed or miscounted).

    .venv/bin/python bench/ingest.py                    # 1,000,000 rows, once
    .venv/bin/python bench/ingest.py --rows 200000 --repeat 3 --json
    .venv/bin/python bench/ingest.py --rows 200000 --profile   # cProfile the pipeline
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import resource
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from revision import commit_id

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_WORKDIR = HERE / "out"
END = datetime(2024, 6, 30, 23, 59, 59)  # fixed, so the cached file is reproducible
SEED = 7
BATCH = 10_000
MIN_RATIO = 0.7
MAX_RSS_MB = 200.0
IDENTITY_HEADER = "Receipt No."


# --- helpers --------------------------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's own peak resident set size, in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes vs KiB


def source_digest() -> str:
    """sha256 over the files under src/ (tracked and untracked): what was measured.

    With a dirty tree the commit alone does not say which code ran; this does.
    """
    try:
        listed = subprocess.run(
            ["git", "ls-files", "-co", "--exclude-standard", "-z", "--", "src"],
            cwd=REPO,
            capture_output=True,
            check=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    digest = hashlib.sha256()
    for name in sorted(filter(None, listed.split(b"\0"))):
        file = REPO / name.decode()
        if file.is_file():
            digest.update(name + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:12]


def fresh(db: Path) -> None:
    """Remove a SQLite database and its WAL files."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)


def statement_file(workdir: Path, rows: int, seed: int) -> Path:
    """The generated statement of ``rows`` rows (payments and their charges), cached."""
    path = workdir / f"statement-{rows}-s{seed}.csv"
    if path.exists():
        return path
    from pesabridge.devtools.statements import write_statement

    print(f"generating {path.name} ...", file=sys.stderr, flush=True)
    started = time.perf_counter()
    partial = path.with_suffix(".partial")
    written = write_statement(partial, rows // 2, end=END, seed=seed)
    if written != rows:
        raise SystemExit(f"generator wrote {written} rows, expected {rows}")
    partial.replace(path)
    print(f"generated in {time.perf_counter() - started:.1f}s", file=sys.stderr, flush=True)
    return path


# --- the children ---------------------------------------------------------------------


def statement_rows(stream: TextIO) -> tuple[Iterator[list[str]], str]:
    """A csv.reader past the preamble (up to and including the header row), and the short code."""
    reader = csv.reader(stream)
    account = ""
    for row in reader:
        if row and row[0] == IDENTITY_HEADER:
            break
        if len(row) > 1 and row[0] == "Short Code:":
            account = row[1]
    return reader, account


def run_floor(path: Path, db: Path, batch: int) -> dict[str, Any]:
    """Bare csv.reader + batched executemany into a table keyed on the identity."""
    fresh(db)
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(
        """CREATE TABLE rows (
            id INTEGER PRIMARY KEY,
            receipt TEXT NOT NULL, completion_time TEXT, initiation_time TEXT, details TEXT,
            status TEXT, paid_in TEXT, withdrawn TEXT, balance TEXT, balance_confirmed TEXT,
            reason_type TEXT, other_party TEXT, linked TEXT, reference TEXT,
            entry TEXT NOT NULL, provider TEXT NOT NULL, account TEXT NOT NULL,
            UNIQUE (receipt, entry, provider, account)
        )"""
    )
    insert = f"INSERT INTO rows VALUES (NULL, {', '.join('?' * 16)})"
    count = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
    with path.open(newline="", encoding="utf-8") as stream:
        reader, account = statement_rows(stream)
        tail = ("mpesa", account)
        pending: list[tuple[str, ...]] = []
        for row in reader:
            pending.append(
                (*row, "charge" if "Charge" in row[3] else "payment", *tail)  # 13 + identity
            )
            if len(pending) >= batch:
                conn.execute("BEGIN IMMEDIATE")
                conn.executemany(insert, pending)
                conn.execute("COMMIT")
                count += len(pending)
                pending.clear()
        if pending:
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(insert, pending)
            conn.execute("COMMIT")
            count += len(pending)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    stored = conn.execute("SELECT count(*) FROM rows").fetchone()[0]
    conn.close()
    return {"rows": count, "stored": stored, "seconds": seconds, "cpu": cpu}


def run_ledger_floor(path: Path, db: Path, batch: int) -> dict[str, Any]:
    """Bare csv.reader + executemany into the ledger's own three tables, no parsing.

    What the ledger's schema costs by itself: each row becomes a ``transactions`` row, an
    ``evidence`` row (the raw line) and a ``deliveries`` row, with every index and foreign key
    the migrations create, the CSV fields stored as they are (no dates, amounts or MSISDNs
    parsed, no lookups of known receipts). The pipeline cannot beat this; the gap between the
    two is the pipeline's own work.
    """
    from pesabridge.store import Store

    fresh(db)
    Store.open(f"sqlite:///{db}").close()  # the schema, by the migrations
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    stamp = "2024-07-01 00:00:00.000000"
    file_id = conn.execute(
        "INSERT INTO files (sha256, source, name, size, status, rows_read, new, known,"
        " rejected, started_at) VALUES ('x', 'bench', ?, 0, 'ingesting', 0, 0, 0, 0, ?)",
        (path.name, stamp),
    ).lastrowid
    insert_txn = f"INSERT INTO transactions VALUES ({', '.join('?' * 18)})"
    insert_evidence = (
        "INSERT INTO evidence (transaction_id, kind, source, file_id, line, fingerprint, raw,"
        " observed_at) VALUES (?, 'file', ?, ?, ?, ?, ?, ?)"
    )
    insert_delivery = (
        "INSERT INTO deliveries (transaction_id, sink, state, attempts, next_attempt_at,"
        " created_at, updated_at) VALUES (?, 'erp', 'pending', 0, ?, ?, ?)"
    )
    count = 0
    started = time.perf_counter()
    cpu_started = time.process_time()
    with path.open(newline="", encoding="utf-8") as stream:
        reader, account = statement_rows(stream)
        txns: list[tuple[Any, ...]] = []
        evidence: list[tuple[Any, ...]] = []
        outbox: list[tuple[Any, ...]] = []
        for line, row in enumerate(reader, start=count + 7):
            count += 1
            entry = "charge" if "Charge" in row[3] else "payment"
            amount = row[5] or row[6]
            txns.append(
                (count, "mpesa", account, row[0], entry, "in", amount, "KES", row[1],
                 row[10], "masked", row[10], row[12], row[7], row[4], row[11] or None,
                 "file", stamp)
            )  # fmt: skip
            raw = ",".join(row).encode()
            evidence.append((count, path.name, file_id, line, f"file:{file_id}:{line}", raw, stamp))
            outbox.append((count, stamp, stamp, stamp))
            if len(txns) >= batch:
                _write_ledger_batch(conn, (insert_txn, insert_evidence, insert_delivery),
                                    (txns, evidence, outbox))  # fmt: skip
        _write_ledger_batch(conn, (insert_txn, insert_evidence, insert_delivery),
                            (txns, evidence, outbox))  # fmt: skip
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    stored = conn.execute("SELECT count(*) FROM deliveries").fetchone()[0]
    conn.close()
    return {"rows": count, "stored": stored, "seconds": seconds, "cpu": cpu}


def _write_ledger_batch(
    conn: sqlite3.Connection, statements: tuple[str, ...], batches: tuple[list[Any], ...]
) -> None:
    conn.execute("BEGIN IMMEDIATE")
    for statement, rows in zip(statements, batches, strict=True):
        conn.executemany(statement, rows)
        rows.clear()
    conn.execute("COMMIT")


def run_pipeline(path: Path, db: Path, batch: int, profile: Path | None) -> dict[str, Any]:
    """``ingest_file`` into a fresh ledger, one outbox row per transaction; then verify."""
    from sqlalchemy import text

    from pesabridge.pipeline import ingest_file
    from pesabridge.store import Store

    fresh(db)
    store = Store.open(f"sqlite:///{db}")
    profiler = None
    if profile is not None:
        import cProfile

        profiler = cProfile.Profile()
    started = time.perf_counter()
    cpu_started = time.process_time()
    if profiler is not None:
        profiler.enable()
    summary = ingest_file(
        store,
        path,
        fmt="mpesa-statement",
        source="bench",
        route=lambda _txn: ["erp"],
        batch_size=batch,
    )
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(profile)
    seconds = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    with store.read() as conn:
        counts = {
            table: conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("transactions", "deliveries", "evidence")
        }
    store.close()
    return {
        "rows": summary.rows_read,
        "new": summary.new,
        "rejected": summary.rejected,
        "error": summary.error,
        "first_rejects": [str(r) for r in summary.rejects[:3]],
        "counts": counts,
        "seconds": seconds,
        "cpu": cpu,
    }


def child_main(args: argparse.Namespace) -> int:
    path, db = Path(args.file), Path(args.db)
    if args.child == "floor":
        result = run_floor(path, db, args.batch)
    elif args.child == "ledger-floor":
        result = run_ledger_floor(path, db, args.batch)
    else:
        profile = Path(args.profile_out) if args.profile_out else None
        result = run_pipeline(path, db, args.batch, profile)
    result["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(result))
    return 0


def in_child(phase: str, path: Path, workdir: Path, batch: int, **extra: str) -> dict[str, Any]:
    """Run one measured phase in a fresh interpreter; its JSON result."""
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        phase,
        "--file",
        str(path),
        "--db",
        str(workdir / f"{phase}.db"),
        "--batch",
        str(batch),
    ]
    for key, value in extra.items():
        command += [f"--{key.replace('_', '-')}", value]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"{phase} child failed with exit status {done.returncode}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --- the parent -----------------------------------------------------------------------


def verify(phase: str, result: dict[str, Any], rows: int) -> list[str]:
    """What is wrong with a child's result (nothing, normally)."""
    problems = []
    if result["rows"] != rows:
        problems.append(f"{phase}: read {result['rows']} rows, expected {rows}")
    if phase in ("floor", "ledger-floor"):
        if result["stored"] != rows:
            problems.append(f"{phase}: table holds {result['stored']} rows, expected {rows}")
        return problems
    if result["error"]:
        problems.append(f"pipeline: {result['error']}")
    if result["rejected"]:
        problems.append(
            f"pipeline: {result['rejected']} rejects, e.g. {'; '.join(result['first_rejects'])}"
        )
    if result["new"] != rows:
        problems.append(f"pipeline: {result['new']} new transactions, expected {rows}")
    for table, found in result["counts"].items():
        if found != rows:
            problems.append(f"pipeline: {table} holds {found} rows, expected {rows}")
    return problems


def profile_main(path: Path, workdir: Path, batch: int, top: int) -> int:
    import pstats

    out = workdir / f"pipeline-{path.stem}.prof"
    result = in_child("pipeline", path, workdir, batch, profile_out=str(out))
    print(f"profiled pipeline: {result['rows']:,} rows in {result['seconds']:.2f}s (cProfile)")
    print(f"stats: {out}  (python -m pstats {out})")
    for order in ("cumulative", "tottime"):
        print(f"\n=== top {top} by {order} ===")
        pstats.Stats(str(out)).strip_dirs().sort_stats(order).print_stats(top)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="statement rows (even)")
    parser.add_argument("--repeat", type=int, default=1, help="runs per phase; median reported")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--batch", type=int, default=BATCH, help="rows per commit (both sides)")
    parser.add_argument("--json", action="store_true", help="also print one JSON result line")
    parser.add_argument("--profile", action="store_true", help="cProfile the pipeline instead")
    parser.add_argument("--top", type=int, default=15, help="with --profile: entries per list")
    parser.add_argument(
        "--child", choices=("floor", "ledger-floor", "pipeline"), help=argparse.SUPPRESS
    )
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--db", help=argparse.SUPPRESS)
    parser.add_argument("--profile-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        return child_main(args)
    if args.rows <= 0 or args.rows % 2:
        parser.error("--rows must be a positive even number (a payment and its charge row)")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    path = statement_file(workdir, args.rows, args.seed)
    if args.profile:
        return profile_main(path, workdir, args.batch, args.top)

    commit, src = commit_id(), source_digest()
    floors: list[dict[str, Any]] = []
    pipelines: list[dict[str, Any]] = []
    ledger_floors: list[dict[str, Any]] = []
    problems: list[str] = []
    for run in range(args.repeat):
        # Alternate the order so drift in machine load hits both sides alike.
        phases = ("floor", "ledger-floor", "pipeline")
        order = phases if run % 2 == 0 else phases[::-1]
        for phase in order:
            result = in_child(phase, path, workdir, args.batch)
            result["rows_per_s"] = result["rows"] / result["seconds"]
            problems += verify(phase, result, args.rows)
            {"floor": floors, "ledger-floor": ledger_floors, "pipeline": pipelines}[phase].append(
                result
            )
            print(
                f"  run {run + 1}/{args.repeat} {phase:<12} {result['rows_per_s']:>10,.0f} rows/s"
                f"  {result['seconds']:6.2f}s"
                f"  {result['cpu'] / result['rows'] * 1e6:5.1f} us CPU/row"
                f"  peak RSS {result['peak_rss_mb']:.0f} MB",
                file=sys.stderr,
                flush=True,
            )
        for phase in phases:
            fresh(workdir / f"{phase}.db")

    floor_rate = statistics.median(r["rows_per_s"] for r in floors)
    pipeline_rate = statistics.median(r["rows_per_s"] for r in pipelines)
    ratio = pipeline_rate / floor_rate
    ledger_rate = statistics.median(r["rows_per_s"] for r in ledger_floors)

    def cpu_per_row(results: list[dict[str, Any]]) -> float:
        return statistics.median(r["cpu"] / r["rows"] * 1e6 for r in results)

    floor_cpu, ledger_cpu, pipeline_cpu = map(cpu_per_row, (floors, ledger_floors, pipelines))
    rss = max(r["peak_rss_mb"] for r in pipelines)
    floor_rss = max(r["peak_rss_mb"] for r in floors)
    ratio_ok, rss_ok = ratio >= MIN_RATIO, rss < MAX_RSS_MB
    verdict = "PASS" if ratio_ok and rss_ok and not problems else "FAIL"
    stat = "median of " + str(args.repeat) if args.repeat > 1 else "single run"

    print(f"commit          {commit} (src sha256 {src})")
    print(f"python/sqlite   {platform.python_version()} / {sqlite3.sqlite_version}")
    print(f"rows            {args.rows:,} ({path.name}, {path.stat().st_size / 1e6:.0f} MB)")
    print(f"floor           {floor_rate:>10,.0f} rows/s ({stat}; peak RSS {floor_rss:.0f} MB)")
    print(f"pipeline        {pipeline_rate:>10,.0f} rows/s ({stat})")
    print(
        f"ledger floor    {ledger_rate:>10,.0f} rows/s ({ledger_rate / floor_rate:.3f} x floor:"
        f" the ledger's three tables with no parsing; pipeline {pipeline_rate / ledger_rate:.3f} x)"
    )
    print(
        f"CPU per row     floor {floor_cpu:.1f} us, ledger floor {ledger_cpu:.1f} us, pipeline"
        f" {pipeline_cpu:.1f} us (pipeline/ledger floor by CPU {ledger_cpu / pipeline_cpu:.3f})"
    )
    print(f"ratio           {ratio:10.3f}   {'ok' if ratio_ok else 'FAIL'} (goal >= {MIN_RATIO})")
    print(f"pipeline RSS    {rss:10.0f} MB  {'ok' if rss_ok else 'FAIL'} (goal < {MAX_RSS_MB:.0f})")
    for problem in problems:
        print(f"WRONG RESULT    {problem}")
    print(verdict)
    if args.json:
        print(
            json.dumps(
                {
                    "commit": commit,
                    "src_sha256": src,
                    "rows": args.rows,
                    "repeat": args.repeat,
                    "floor_rows_per_s": round(floor_rate),
                    "pipeline_rows_per_s": round(pipeline_rate),
                    "ledger_floor_rows_per_s": round(ledger_rate),
                    "cpu_us_per_row": {
                        "floor": round(floor_cpu, 2),
                        "ledger_floor": round(ledger_cpu, 2),
                        "pipeline": round(pipeline_cpu, 2),
                    },
                    "ratio": round(ratio, 4),
                    "pipeline_peak_rss_mb": round(rss, 1),
                    "floor_peak_rss_mb": round(floor_rss, 1),
                    "floor_runs": [round(r["rows_per_s"]) for r in floors],
                    "pipeline_runs": [round(r["rows_per_s"]) for r in pipelines],
                    "problems": problems,
                    "pass": verdict == "PASS",
                }
            )
        )
    if problems:
        return 2
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    sys.exit(main())
