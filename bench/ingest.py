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
from datetime import datetime
from pathlib import Path
from typing import Any

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
    with path.open(newline="", encoding="utf-8") as stream:
        reader = csv.reader(stream)
        account = ""
        for row in reader:  # the preamble, up to and including the header row
            if row and row[0] == IDENTITY_HEADER:
                break
            if len(row) > 1 and row[0] == "Short Code:":
                account = row[1]
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
    stored = conn.execute("SELECT count(*) FROM rows").fetchone()[0]
    conn.close()
    return {"rows": count, "stored": stored, "seconds": seconds}


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
    }


def child_main(args: argparse.Namespace) -> int:
    path, db = Path(args.file), Path(args.db)
    if args.child == "floor":
        result = run_floor(path, db, args.batch)
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
    if phase == "floor":
        if result["stored"] != rows:
            problems.append(f"floor: table holds {result['stored']} rows, expected {rows}")
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
    parser.add_argument("--child", choices=("floor", "pipeline"), help=argparse.SUPPRESS)
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
    problems: list[str] = []
    for run in range(args.repeat):
        # Alternate the order so drift in machine load hits both sides alike.
        order = ("floor", "pipeline") if run % 2 == 0 else ("pipeline", "floor")
        for phase in order:
            result = in_child(phase, path, workdir, args.batch)
            result["rows_per_s"] = result["rows"] / result["seconds"]
            problems += verify(phase, result, args.rows)
            (floors if phase == "floor" else pipelines).append(result)
            print(
                f"  run {run + 1}/{args.repeat} {phase:<8} {result['rows_per_s']:>10,.0f} rows/s"
                f"  {result['seconds']:6.2f}s  peak RSS {result['peak_rss_mb']:.0f} MB",
                file=sys.stderr,
                flush=True,
            )
        fresh(workdir / "floor.db")
        fresh(workdir / "pipeline.db")

    floor_rate = statistics.median(r["rows_per_s"] for r in floors)
    pipeline_rate = statistics.median(r["rows_per_s"] for r in pipelines)
    ratio = pipeline_rate / floor_rate
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
