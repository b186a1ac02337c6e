"""Outage drain benchmark: how long one worker takes to clear the backlog of an outage.

Issue 6: after 10 minutes of back-office outage at 500 transactions/s, the backlog
(300,000 deliveries) must clear in under 20 minutes while transactions keep arriving at
500/s, so sustained delivery, retries included, must exceed 750/s. The set-up, on a
fresh SQLite ledger:

* **backlog**: ``--rows`` transactions (default 300,000) recorded through the ledger's
  bulk path (``Store.record``, 10,000 per transaction), one HTTP delivery each;
* **already failed**: ``--failed`` of them (default 20 %) tried during the outage: an
  attempt on record (503), 1-4 attempts used, the next retry scheduled over the first
  two minutes of the drain (scaled down with ``--rows``);
* **a shaky return**: the back office (a child process, keep-alive) answers the first
  ``--refuse`` requests (default 2 % of the rows) with 503, so those are retried with the
  sink's default backoff during the drain.

* **traffic goes on**: ``--arrivals`` new transactions a second (default 500) are
  recorded during the drain, in the same process, 50 at a time (as group-committed
  callbacks would be).

Then one ``DeliveryWorker`` with the default configuration (worker batch, lease, poll
interval; the HTTP sink's default concurrency and retry policy) drains it. The clock
stops when no backlog delivery is pending or in flight: the sustained rate is what was
delivered by then (the backlog, its retries and the few arrivals that were due before
it ended) over that time. With arrivals at ``a``/s, a backlog of ``N`` clears in
``N / (rate - a)`` seconds. Then arrivals stop and the rest is delivered: every delivery
must end delivered, and the back office must hold exactly one posting per transaction
and no replays (exit 2 otherwise).

**Goal:** sustained rate >= 750/s, i.e. 300,000 cleared in under 20 minutes while 500/s
keep arriving.

    .venv/bin/python bench/drain.py                 # 300,000 rows (several minutes)
    .venv/bin/python bench/drain.py --rows 20000 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from deliver import BackOfficeProcess, sink_config, transactions
from sqlalchemy import bindparam, func, insert, select, update

from pesabridge import aio
from pesabridge.config import parse_config
from pesabridge.delivery import DeliveryWorker, RetryPolicy
from pesabridge.formats.base import Observation
from pesabridge.logs import configure_logging
from pesabridge.sinks.http import HttpSink
from pesabridge.store import Sighting, Store, utcnow
from pesabridge.store.schema import attempts, deliveries

GOAL_PER_SECOND = 750.0
OUTAGE_ROWS = 300_000
GOAL_SECONDS = 20 * 60
RETRY_WINDOW = 120.0
"""Seconds over which the already-failed deliveries' retries fall due (at 300,000 rows)."""


def load_backlog(store: Store, rows: int, failed: float, seed: int) -> tuple[int, float]:
    """Record the backlog; returns (deliveries made to fail earlier, seconds taken)."""
    started = time.perf_counter()
    sighting = Sighting("callback", "callback")
    chunk = 10_000
    for start in range(0, rows, chunk):
        batch = transactions(min(chunk, rows - start), offset=start)
        store.record(
            [Observation(t, f"req-{t.receipt}", None, t.receipt.encode()) for t in batch],
            sighting,
            lambda _t: ["erp"],
        )
    rng = random.Random(seed)
    now = utcnow()
    window = RETRY_WINDOW * rows / OUTAGE_ROWS
    with store.write() as conn:
        ids = conn.execute(select(deliveries.c.id).order_by(deliveries.c.id)).scalars().all()
        chosen = rng.sample(list(ids), int(len(ids) * failed))
        updates = []
        tried = []
        for delivery_id in chosen:
            used = rng.randint(1, 4)
            updates.append(
                {
                    "b_id": delivery_id,
                    "b_attempts": used,
                    "b_next": now + timedelta(seconds=rng.uniform(0, window)),
                }
            )
            tried.append(
                {
                    "delivery_id": delivery_id,
                    "number": used,
                    "worker": "outage",
                    "started_at": now - timedelta(seconds=5),
                    "finished_at": now - timedelta(seconds=5),
                    "outcome": "retry",
                    "status_code": 503,
                    "error": "HTTP 503",
                    "response": "refused",
                }
            )
        d = deliveries.c
        if updates:
            conn.execute(
                update(deliveries)
                .where(d.id == bindparam("b_id"))
                .values(
                    attempts=bindparam("b_attempts"),
                    next_attempt_at=bindparam("b_next"),
                    last_status=503,
                    last_error="HTTP 503",
                ),
                updates,
            )
            conn.execute(insert(attempts), tried)
    return len(chosen), time.perf_counter() - started


def counts(store: Store) -> dict[str, int]:
    with store.read() as conn:
        query = select(deliveries.c.state, func.count()).group_by(deliveries.c.state)
        return {state: int(n) for state, n in conn.execute(query)}


def outstanding(store: Store) -> bool:
    with store.read() as conn:
        query = select(deliveries.c.id).where(deliveries.c.state.in_(("pending", "in_flight")))
        return conn.execute(query.limit(1)).first() is not None


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def backlog_open(store: Store, last_id: int) -> bool:
    """Whether a backlog delivery (id <= ``last_id``) is still pending or in flight."""
    d = deliveries.c
    with store.read() as conn:
        query = select(d.id).where(d.state.in_(("pending", "in_flight")), d.id <= last_id)
        return conn.execute(query.limit(1)).first() is not None


async def arrive(store: Store, per_second: float, first: int, stop: asyncio.Event) -> int:
    """Record ``per_second`` new transactions a second until ``stop``; returns how many."""
    sighting = Sighting("callback", "callback")
    loop = asyncio.get_running_loop()
    started = loop.time()
    made = 0
    while not stop.is_set():
        due = int((loop.time() - started) * per_second) - made
        if due > 0:
            batch = transactions(min(due, 50), offset=first + made)
            store.record(
                [Observation(t, f"req-{t.receipt}", None, t.receipt.encode()) for t in batch],
                sighting,
                lambda _t: ["erp"],
            )
            made += len(batch)
        await asyncio.sleep(0.02)
    return made


async def drain(
    store: Store, url: str, rows: int, arrivals: float, progress: bool
) -> tuple[float, float, int, int]:
    """Run one worker with the default configuration until the backlog is gone, with
    traffic arriving meanwhile; then deliver the arrivals too. Returns the backlog's
    drain time, the CPU used meanwhile, how many deliveries were delivered by then and
    how many transactions arrived in all."""
    config = parse_config({}, environ={})
    sink_section = sink_config(url)
    sink = HttpSink(sink_section)
    policy = RetryPolicy(
        max_attempts=sink_section.max_attempts,
        base=sink_section.backoff_base,
        cap=sink_section.backoff_cap,
    )
    worker = DeliveryWorker(
        store,
        {"erp": sink},
        {"erp": policy},
        batch=config.worker.batch,
        lease=timedelta(seconds=config.worker.lease_seconds),
        poll_interval=config.worker.poll_interval,
    )
    with store.read() as conn:
        last_id = int(conn.execute(select(func.max(deliveries.c.id))).scalar_one())
    stop, traffic_stop = asyncio.Event(), asyncio.Event()
    started, cpu = time.perf_counter(), cpu_seconds()
    task = asyncio.create_task(worker.run(stop))
    traffic = asyncio.create_task(arrive(store, arrivals, rows, traffic_stop))
    last_report = started
    try:
        while True:
            await asyncio.sleep(0.1)
            if task.done():
                task.result()
            if not backlog_open(store, last_id):
                break
            if progress and time.perf_counter() - last_report > 10:
                last_report = time.perf_counter()
                print(f"  {last_report - started:6.0f} s: {counts(store)}", file=sys.stderr)
        seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        delivered = counts(store).get("delivered", 0)
        traffic_stop.set()
        arrived = await traffic
        while outstanding(store):
            await asyncio.sleep(0.1)
            if task.done():
                task.result()
        return seconds, cpu, delivered, arrived
    finally:
        traffic_stop.set()
        stop.set()
        await task
        await worker.close()


async def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rows", type=int, default=OUTAGE_ROWS)
    parser.add_argument("--failed", type=float, default=0.2, help="Share already tried")
    parser.add_argument("--refuse", type=int, default=None, help="503s at first (2%% of rows)")
    parser.add_argument("--arrivals", type=float, default=500.0, help="New per second")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    configure_logging("WARNING", json=True)
    refuse = args.refuse if args.refuse is not None else args.rows // 50

    with tempfile.TemporaryDirectory() as tmp:
        store = Store.open(f"sqlite:///{Path(tmp) / 'ledger.db'}")
        try:
            already, load_seconds = load_backlog(store, args.rows, args.failed, args.seed)
            server = BackOfficeProcess(fail_first=refuse)
            with server as url:
                seconds, cpu, delivered, arrived = await drain(
                    store, url, args.rows, args.arrivals, progress=not args.json
                )
                postings, replays, requests = server.finish_counts()
            final = counts(store)
            with store.read() as conn:
                attempt_rows = int(
                    conn.execute(select(func.count()).select_from(attempts)).scalar()
                )
        finally:
            store.close()

    total = args.rows + arrived
    rate = delivered / seconds
    net = rate - args.arrivals
    projected = OUTAGE_ROWS / net if net > 0 else float("inf")
    ok = final == {"delivered": total} and postings == total and replays == 0
    results: dict[str, Any] = {
        "rows": args.rows,
        "already_failed": already,
        "refused_at_first": refuse,
        "load_seconds": round(load_seconds, 1),
        "seconds": round(seconds, 1),
        "per_second": round(rate, 1),
        "arrivals_per_second": args.arrivals,
        "arrived": arrived,
        "cpu_us_per_delivery": round(1e6 * cpu / max(delivered, 1), 1),
        "delivered_in_time": delivered,
        "projected_300k_seconds": round(projected, 1) if net > 0 else None,
        "goal_seconds": GOAL_SECONDS,
        "requests": requests,
        "attempt_rows": attempt_rows,
        "postings": postings,
        "replays": replays,
        "states": final,
        "goal_per_second": GOAL_PER_SECOND,
        "pass": ok and rate >= GOAL_PER_SECOND,
    }
    if args.json:
        print(json.dumps(results))
    else:
        print(
            f"backlog {args.rows:,} ({already:,} already tried, {refuse:,} refused at first), "
            f"loaded in {load_seconds:.1f} s"
        )
        print(
            f"backlog drained in {seconds:.1f} s with {args.arrivals:.0f}/s arriving: "
            f"{rate:.0f} deliveries/s sustained ({1e6 * cpu / delivered:.0f} us CPU each), "
            f"{requests:,} requests in all"
        )
        print(
            f"300,000 with {args.arrivals:.0f}/s arriving: "
            + (f"{projected:.0f} s" if net > 0 else "never (arrivals outpace delivery)")
            + f" (goal < {GOAL_SECONDS} s, i.e. >= {GOAL_PER_SECOND:.0f}/s) "
            + ("PASS" if results["pass"] else "FAIL")
        )
        print(f"states {final} ({arrived:,} arrived), postings {postings:,}, replays {replays}")
    if not ok:
        return 2
    return 0 if results["pass"] else 1


if __name__ == "__main__":
    # The event loop the runtime uses (uvloop where installed), for both phases.
    sys.exit(aio.run(main()))
