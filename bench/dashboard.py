"""Dashboard benchmark: search over 1,000,000 transactions in SQLite, and page sizes.

Loads N transactions (default 1,000,000) through the store's batch path (``Store.record``,
10,000 per transaction, as a statement ingest does), then times the dashboard's own search
function for the four searches it promises to keep fast: receipt, phone suffix (last four
digits), reference and a seven-day date range. The baseline, measured in the same run on
the same ledger, is the same SQL forced to a full table scan (``NOT INDEXED``): the ratio
says what the indexes of migration 0008 buy. Then every page is fetched over real HTTP
as an admin, and its size reported.

Goals: p95 < 200 ms for each search; every page < 150 KB. Exit 0 PASS, 1 FAIL.
The ledger is cached as ``bench/out/dashboard-<rows>-s<seed>.db``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import re
import statistics
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from revision import commit_id

REPO = Path(__file__).resolve().parents[1]
SEARCH_GOAL_MS = 200.0
PAGE_GOAL_BYTES = 150 * 1024
BATCH = 10_000
END = datetime(2026, 1, 1, tzinfo=UTC)
DAYS = 365


def receipt(i: int) -> str:
    return f"BNC{i:07d}"


def msisdn(rng: random.Random) -> str:
    return f"2547{rng.randrange(10**8):08d}"


def load(db: Path, rows: int, seed: int) -> float:
    """Fill a fresh ledger; returns seconds. Every tenth transaction is routed to ``erp``."""
    from pesabridge.formats.base import Observation
    from pesabridge.model import Counterparty, Direction, Entry, Transaction
    from pesabridge.store import Sighting, Store

    rng = random.Random(seed)
    store = Store.open(f"sqlite:///{db}")
    sighting = Sighting("callback", "callback")
    started = time.perf_counter()
    names = ["JANE WANJIKU", "JOHN OTIENO", "MARY AKINYI", "PETER KAMAU", "GRACE NJERI"]
    for start in range(0, rows, BATCH):
        batch = []
        for i in range(start, min(rows, start + BATCH)):
            moment = END - timedelta(seconds=rng.randrange(DAYS * 86400))
            t = Transaction.fast(
                "mpesa",
                f"60{rng.randrange(10):04d}",
                receipt(i),
                Entry.PAYMENT,
                Direction.CREDIT,
                Decimal(rng.randrange(100, 5_000_000)).scaleb(-2),
                "KES",
                moment,
                Counterparty(msisdn=msisdn(rng), name=rng.choice(names)),
                f"INV-{rng.randrange(rows // 4):07d}",
            )
            batch.append(Observation(t, f"bench-{i}", None, b"{}"))
        store.record(batch, sighting, lambda t: ["erp"] if t.receipt.endswith("0") else [])
        print(f"  loaded {min(rows, start + BATCH):,}", end="\r", file=sys.stderr)
    seconds = time.perf_counter() - started
    store.close()
    return seconds


def kill_some(store: Any, count: int) -> None:
    """Dead-letter ``count`` deliveries in three groups, for the Failures page."""
    from pesabridge.store import AttemptRecord, utcnow

    errors = ["HTTP 422: unknown account", "HTTP 400: bad reference", "HTTP 409: duplicate"]
    done = 0
    while done < count:
        claimed = store.claim("bench", limit=min(500, count - done))
        if not claimed:
            break
        now = utcnow()
        store.finish_many(
            [
                (c, AttemptRecord("bench", c.attempt, now, now, "dead", 422, errors[i % 3]), None)
                for i, c in enumerate(claimed)
            ]
        )
        done += len(claimed)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def searches(store: Any, rows: int, seed: int, runs: int) -> dict[str, dict[str, float]]:
    """p50/p95 of each promised search through the dashboard's search(), and the same SQL
    forced to a full scan (the baseline)."""
    from sqlalchemy import text

    from pesabridge.dashboard.search import _query, parse_filters, search

    rng = random.Random(seed + 1)

    def params(kind: str) -> dict[str, str]:
        if kind == "receipt":
            return {"receipt": receipt(rng.randrange(rows))}
        if kind == "phone suffix":
            return {"phone": f"{rng.randrange(10_000):04d}"}
        if kind == "reference":
            return {"reference": f"inv-{rng.randrange(rows // 4):07d}"}
        day = (END - timedelta(days=rng.randrange(7, DAYS))).date()
        return {"date_from": str(day - timedelta(days=6)), "date_to": str(day)}

    results: dict[str, dict[str, float]] = {}
    for kind in ("receipt", "phone suffix", "reference", "date range"):
        times, found = [], 0
        for _ in range(runs):
            f = parse_filters(params(kind), unmasked=False)
            started = time.perf_counter()
            with store.read() as conn:
                page, _more = search(conn, f, UTC)
            times.append((time.perf_counter() - started) * 1000)
            found += len(page)
        scans = []
        for _ in range(3):
            f = parse_filters(params(kind), unmasked=False)
            with store.read() as conn:
                sql = str(
                    _query(f, UTC).limit(51).compile(conn, compile_kwargs={"literal_binds": True})
                )
                sql = sql.replace("FROM transactions", "FROM transactions NOT INDEXED", 1)
                started = time.perf_counter()
                conn.execute(text(sql)).all()
                scans.append((time.perf_counter() - started) * 1000)
        results[kind] = {
            "p50_ms": statistics.median(times),
            "p95_ms": percentile(times, 0.95),
            "rows_per_search": found / runs,
            "full_scan_ms": statistics.median(scans),
        }
    return results


def page_sizes(store: Any, password: str) -> dict[str, dict[str, float]]:
    """Every page fetched over real HTTP as an admin: bytes and seconds."""
    import requests
    import uvicorn

    from pesabridge.server import build_app

    server = uvicorn.Server(
        uvicorn.Config(build_app(store, []), host="127.0.0.1", port=0, log_level="warning")
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}/ui"
    client = requests.Session()
    login = client.get(f"{base}/login")
    token = re.search(r'name="csrf" value="([^"]+)"', login.text)
    assert token is not None
    client.post(f"{base}/login", data={"username": "bench", "password": password, "csrf": token[1]})
    with store.read() as conn:
        tid = conn.execute(text_query("SELECT max(transaction_id) FROM deliveries")).scalar()
    pages = {
        "login": "/login",
        "overview": "/",
        "transactions (newest 50)": "/transactions",
        "transactions (phone suffix)": "/transactions?phone=1234",
        "transactions (7-day range, by amount)": (
            "/transactions?date_from=2025-06-01&date_to=2025-06-07&sort=amount"
        ),
        "transaction detail": f"/transactions/{tid}",
        "failures": "/failures",
        "files": "/files",
        "reconciliation": "/reconciliation",
        "settings": "/settings",
        "audit": "/audit",
    }
    found = {}
    try:
        for name, path in pages.items():
            getter = requests.get if name == "login" else client.get
            started = time.perf_counter()
            answer = getter(base + path)
            seconds = time.perf_counter() - started
            assert answer.status_code == 200, (path, answer.status_code)
            found[name] = {"bytes": len(answer.content), "seconds": seconds}
    finally:
        server.should_exit = True
        thread.join(10)
    return found


def text_query(sql: str) -> Any:
    from sqlalchemy import text

    return text(sql)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--runs", type=int, default=200, help="searches of each kind")
    parser.add_argument("--workdir", type=Path, default=REPO / "bench" / "out")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    from pesabridge.dashboard.users import UserError, add_user
    from pesabridge.store import Store

    args.workdir.mkdir(parents=True, exist_ok=True)
    db = args.workdir / f"dashboard-{args.rows}-s{args.seed}.db"
    load_seconds = None
    if not db.exists():
        partial = db.with_suffix(".partial")
        for leftover in args.workdir.glob(partial.name + "*"):
            leftover.unlink()
        load_seconds = load(partial, args.rows, args.seed)
        store = Store.open(f"sqlite:///{partial}")
        kill_some(store, 1000)
        store.close()
        for suffix in ("-wal", "-shm"):
            Path(str(partial) + suffix).unlink(missing_ok=True)
        partial.rename(db)
    store = Store.open(f"sqlite:///{db}")
    password = "bench-password-1"
    with contextlib.suppress(UserError):  # a cached ledger has it already
        add_user(store, "bench", password, "admin")
    try:
        found = searches(store, args.rows, args.seed, args.runs)
        pages = page_sizes(store, password)
    finally:
        store.close()

    ok = all(r["p95_ms"] < SEARCH_GOAL_MS for r in found.values()) and all(
        p["bytes"] < PAGE_GOAL_BYTES for p in pages.values()
    )
    print(f"dashboard bench: {args.rows:,} transactions in SQLite, commit {commit_id()}")
    if load_seconds is not None:
        print(f"  loaded in {load_seconds:.0f} s ({args.rows / load_seconds:,.0f}/s)")
    print(f"  {'search':<14}{'p50 ms':>9}{'p95 ms':>9}{'scan ms':>10}{'scan/p95':>10}{'rows':>7}")
    for kind, r in found.items():
        print(
            f"  {kind:<14}{r['p50_ms']:>9.2f}{r['p95_ms']:>9.2f}{r['full_scan_ms']:>10.1f}"
            f"{r['full_scan_ms'] / r['p95_ms']:>10.0f}{r['rows_per_search']:>7.1f}"
        )
    print(f"  {'page':<40}{'KB':>8}{'ms':>8}")
    for name, p in pages.items():
        print(f"  {name:<40}{p['bytes'] / 1024:>8.1f}{p['seconds'] * 1000:>8.0f}")
    print(
        f"  goals: search p95 < {SEARCH_GOAL_MS:.0f} ms, pages < 150 KB: {'PASS' if ok else 'FAIL'}"
    )
    if args.json:
        print(json.dumps({"commit": commit_id(), "searches": found, "pages": pages, "pass": ok}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
