"""Delivery benchmark: the outbox to a local HTTP back office, against a bare aiohttp client.

A back office (``pesabridge.devtools.backoffice``, keep-alive, books every key once) runs
in a child process. In the same run, on the same machine:

* **bare**: an ``aiohttp`` client posting the same canonical JSON bodies with their
  ``Idempotency-Key`` at the sink's default concurrency over keep-alive connections, no
  ledger: the ceiling of the HTTP stack here;
* **pesabridge**: a ``DeliveryWorker`` with an ``HttpSink`` at its default concurrency
  draining a ledger of N pending deliveries: claims under a lease, encoding, the request,
  and each attempt's row and outcome written to the ledger.
* **floor** (SQLite only): the bare client plus the worker's own ledger statements on a
  raw connection and each body's encoding, nothing else (``deliver_floor``): the most
  any worker keeping this ledger can reach, reported as ``floor_ratio``.

Each phase posts to a fresh back office, which must end with exactly N postings and no
replays. **Goal:** pesabridge/bare >= 0.8.

    .venv/bin/python bench/deliver.py                        # 5,000 deliveries, SQLite
    .venv/bin/python bench/deliver.py --count 2000 --db postgresql+psycopg://...  --json
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import multiprocessing
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select

from pesabridge import aio
from pesabridge.config import parse_config
from pesabridge.delivery import DeliveryWorker, RetryPolicy
from pesabridge.devtools.backoffice import BackOffice
from pesabridge.encoders import canonical_json
from pesabridge.logs import configure_logging
from pesabridge.model import Transaction
from pesabridge.sinks.http import HttpSink
from pesabridge.sinks.http_config import HttpSinkConfig
from pesabridge.store import Sighting, Store
from pesabridge.store.rows import idempotency_key
from pesabridge.store.schema import deliveries

GOAL = 0.8


def _serve(port_queue: Any, stop: Any, fail_first: int = 0) -> None:
    async def run() -> None:
        from pesabridge.devtools.backoffice import Rule

        server = BackOffice()
        if fail_first:
            # An outage's tail: the first requests are refused, to be retried later.
            server.add_rule(Rule(status=503, times=fail_first))
        await server.start()
        port_queue.put(server.port)
        while not stop.is_set():
            await asyncio.sleep(0.05)
            server.state.seen.clear()  # every request's copy: for tests, not needed here
        port_queue.put((len(server.state.postings), server.state.replays, server.state.requests))
        await server.stop()

    asyncio.run(run())


class BackOfficeProcess:
    """The sample back office in a child process (its own CPU, as a real one would be)."""

    def __init__(self, fail_first: int = 0) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.queue = ctx.Queue()
        self.stop = ctx.Event()
        self.process = ctx.Process(
            target=_serve, args=(self.queue, self.stop, fail_first), daemon=True
        )

    def __enter__(self) -> str:
        self.process.start()
        port = self.queue.get(timeout=30)
        return f"http://127.0.0.1:{port}/payments"

    def finish(self) -> tuple[int, int]:
        """Stop the back office: (postings, replays)."""
        postings, replays, _requests = self.finish_counts()
        return postings, replays

    def finish_counts(self) -> tuple[int, int, int]:
        """Stop the back office: (postings, replays, requests answered)."""
        self.stop.set()
        result: tuple[int, int, int] = self.queue.get(timeout=60)
        self.process.join(10)
        return result

    def __exit__(self, *_exc: object) -> None:
        if self.process.is_alive():
            self.process.kill()


def transactions(count: int, offset: int = 0) -> list[Transaction]:
    from decimal import Decimal

    from pesabridge.model import Counterparty
    from pesabridge.store import utcnow

    now = utcnow()
    return [
        Transaction(
            provider="mpesa",
            account="600977",
            receipt=f"SB{i:08d}",
            entry="payment",  # type: ignore[arg-type]
            direction="credit",  # type: ignore[arg-type]
            amount=Decimal("100.00") + i % 997,
            currency="KES",
            occurred_at=now,
            counterparty=Counterparty.of("254712345678", "JANE DOE"),
            reference=f"INV-{i}",
        )
        for i in range(offset, offset + count)
    ]


def sink_config(url: str) -> HttpSinkConfig:
    config = parse_config({"sinks": [{"name": "erp", "type": "http", "url": url}]}, environ={})
    section = config.sinks[0]
    assert isinstance(section, HttpSinkConfig)
    return section


async def bare(url: str, txns: list[Transaction], concurrency: int) -> tuple[float, float]:
    requests = []
    for t in txns:
        key = idempotency_key(t.identity, "erp")
        requests.append((canonical_json(t, idempotency_key=key), key))
    settle()
    started, cpu = time.perf_counter(), cpu_seconds()
    queue = iter(requests)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            for body, key in queue:
                headers = {
                    "Content-Type": "application/json",
                    "Idempotency-Key": key,
                    "User-Agent": "bare",
                }
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    assert response.status == 201, response.status

        await asyncio.gather(*(client() for _ in range(concurrency)))
    return time.perf_counter() - started, cpu_seconds() - cpu


async def ledger_floor(
    url: str, db: str, txns: list[Transaction], concurrency: int, batch: int
) -> tuple[float, float]:
    """The bare client plus the worker's ledger statements and the encoding
    (``deliver_floor``)."""
    from deliver_floor import floor

    store = Store.open(db)
    try:
        store.record(
            [_observed(t) for t in txns], Sighting("callback", "callback"), lambda _t: ["erp"]
        )
    finally:
        store.close()
    known = {t.receipt: (t, idempotency_key(t.identity, "erp")) for t in txns}
    settle()
    started, cpu = time.perf_counter(), cpu_seconds()
    recorded = await floor(url, db.removeprefix("sqlite:///"), known, concurrency, batch)
    elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    if recorded != len(txns):
        raise SystemExit(f"ledger floor: only {recorded} of {len(txns)} recorded")
    return elapsed, cpu


async def pesabridge(
    url: str, db: str, txns: list[Transaction], batch: int, profile: str | None = None
) -> tuple[float, float]:
    store = Store.open(db)
    try:
        store.record(
            [_observed(t) for t in txns], Sighting("callback", "callback"), lambda _t: ["erp"]
        )
        sink = HttpSink(sink_config(url))
        worker = DeliveryWorker(
            store, {"erp": sink}, {"erp": RetryPolicy()}, batch=batch, poll_interval=0.01
        )
        profiler = cProfile.Profile() if profile else None
        settle()
        started, cpu = time.perf_counter(), cpu_seconds()
        if profiler is not None:
            profiler.enable()
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        probe = Probe(store)
        while True:
            await asyncio.sleep(0.05)
            if not probe.outstanding():
                break
            if task.done():
                task.result()
        probe.close()
        elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile)
        stop.set()
        await task
        await worker.close()
        if delivered(store) != len(txns):
            raise SystemExit(f"only {delivered(store)} of {len(txns)} deliveries delivered")
        return elapsed, cpu
    finally:
        store.close()


def settle() -> None:
    """Collect the set-up's garbage and freeze what survives, just before a phase's clock
    starts. The set-up (N transactions, their bodies, a freshly loaded ledger) leaves
    tens of thousands of new objects that would otherwise make the collector run full
    collections during whichever phase allocates more; in a long-running worker such
    objects are long-lived and rarely collected. Done alike before both phases."""
    gc.collect()
    gc.freeze()


def delivered(store: Store) -> int:
    with store.read() as conn:
        query = (
            select(func.count()).select_from(deliveries).where(deliveries.c.state == "delivered")
        )
        return int(conn.execute(query).scalar_one())


class Probe:
    """Whether any delivery is still pending or in flight, asked on a driver connection
    of its own: one index probe, with no SQLAlchemy statement built or run per poll.
    The bench's own polling is not the worker's work; asked through SQLAlchemy it cost
    the worker's phase ~1 ms a poll, 2-6 % of its CPU (py-spy)."""

    SQL = "SELECT 1 FROM deliveries WHERE state IN ('pending', 'in_flight') LIMIT 1"

    def __init__(self, store: Store) -> None:
        self.connection = store.engine.raw_connection()

    def outstanding(self) -> bool:
        cursor = self.connection.cursor()
        try:
            cursor.execute(self.SQL)
            return cursor.fetchone() is not None
        finally:
            cursor.close()
            self.connection.rollback()  # no snapshot kept between polls (PostgreSQL)

    def close(self) -> None:
        self.connection.close()


def _observed(t: Transaction) -> Any:
    from pesabridge.formats.base import Observation

    return Observation(t, "bench", None, t.receipt.encode())


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--db", default=None, help="Ledger URL (default: a fresh SQLite file)")
    parser.add_argument("--batch", type=int, default=None, help="Claim batch (default: config)")
    parser.add_argument("--repeat", type=int, default=1, help="Alternate the phases K times")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--profile", action="store_true", help="cProfile the pesabridge phase (once) instead"
    )
    parser.add_argument("--top", type=int, default=25, help="with --profile: entries per list")
    args = parser.parse_args()
    configure_logging("INFO", json=True)  # as `pesabridge worker` runs it
    if args.profile:
        return await profile_main(args.count, args.batch, args.top)

    concurrency = sink_config("http://127.0.0.1/x").concurrency
    batch = args.batch or parse_config({}, environ={}).worker.batch
    txns = transactions(args.count)
    results: dict[str, Any] = {"count": args.count, "concurrency": concurrency, "batch": batch}
    results["loop"] = type(asyncio.get_running_loop()).__module__  # uvloop or asyncio
    # The ledger floor runs the worker's SQLite statements on a raw connection.
    phases = ["bare", "pesabridge"] + (["floor"] if args.db is None else [])
    runs: dict[str, list[dict[str, Any]]] = {phase: [] for phase in phases}
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.repeat):
            # Rotate which phase goes first, so a change in the machine's load within a
            # round does not always favour the same one.
            order = phases[round_ % len(phases) :] + phases[: round_ % len(phases)]
            for phase in order:
                server = BackOfficeProcess()
                with server as url:
                    db = args.db or f"sqlite:///{Path(tmp) / f'{phase}-{round_}.db'}"
                    if phase == "bare":
                        seconds, cpu = await bare(url, txns, concurrency)
                    elif phase == "floor":
                        seconds, cpu = await ledger_floor(url, db, txns, concurrency, batch)
                    else:
                        if args.db is not None:
                            reset(db)
                        seconds, cpu = await pesabridge(url, db, txns, batch)
                    postings, replays = server.finish()
                ok = ok and postings == args.count and replays == 0
                runs[phase].append(
                    {
                        "seconds": round(seconds, 3),
                        "per_second": round(args.count / seconds, 1),
                        "cpu_us_per_delivery": round(1e6 * cpu / args.count, 1),
                        "postings": postings,
                        "replays": replays,
                    }
                )
    for phase, phase_runs in runs.items():
        middle = sorted(phase_runs, key=lambda r: r["per_second"])[len(phase_runs) // 2]
        cpu = [r["cpu_us_per_delivery"] for r in phase_runs]
        results[phase] = {
            **middle,
            "runs": [r["per_second"] for r in phase_runs],
            "cpu_runs": cpu,
            # Steadier than the rate on a shared machine: the median of the rounds.
            "cpu_us_median": statistics.median(cpu),
        }

    def ratio_of(phase: str) -> tuple[float, list[float]]:
        each = [
            p["per_second"] / b["per_second"]
            for p, b in zip(runs[phase], runs["bare"], strict=True)
        ]
        return statistics.median(each), [round(r, 3) for r in each]

    ratio, results["ratios"] = ratio_of("pesabridge")
    results["ratio"] = round(ratio, 3)
    if "floor" in runs:
        floor_ratio, results["floor_ratios"] = ratio_of("floor")
        results["floor_ratio"] = round(floor_ratio, 3)
    results["goal"] = GOAL
    results["pass"] = ok and ratio >= GOAL
    results["db"] = "sqlite" if args.db is None else args.db.split(":", 1)[0]
    if not args.json:
        print(f"event loop: {results['loop']} (every phase)")
        for phase in phases:
            r = results[phase]
            print(
                f"{phase:>10}: {r['per_second']:>9.1f} deliveries/s  ({r['seconds']} s, "
                f"{r['cpu_us_per_delivery']} us CPU each in this process; runs {r['runs']}; "
                f"CPU median {r['cpu_us_median']} us of {r['cpu_runs']})"
            )
        if "floor" in runs:
            print(
                f"     floor: {results['floor_ratio']:.3f} of bare (median of "
                f"{results['floor_ratios']}): the most any worker keeping this ledger reaches"
            )
        print(
            f"     ratio: {ratio:.3f} (median of {results['ratios']}; goal >= {GOAL}) "
            f"{'PASS' if results['pass'] else 'FAIL'}"
        )
    print(json.dumps(results) if args.json else "")
    if not ok:
        return 2
    return 0 if results["pass"] else 1


async def profile_main(count: int, batch: int | None, top: int) -> int:
    """cProfile one pesabridge phase on a fresh SQLite ledger: the top entries by
    cumulative and by own time (cProfile slows every call, so no rate is compared)."""
    import pstats

    size = batch or parse_config({}, environ={}).worker.batch
    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "deliver.prof")
        server = BackOfficeProcess()
        with server as url:
            seconds, cpu = await pesabridge(
                url, f"sqlite:///{Path(tmp) / 'ledger.db'}", transactions(count), size, out
            )
            server.finish()
        each = 1e6 * cpu / count
        print(f"profiled: {count:,} deliveries in {seconds:.2f} s ({each:.0f} us CPU each)")
        stats = pstats.Stats(out)
        stats.sort_stats("cumulative").print_stats(top)
        stats.sort_stats("tottime").print_stats(top)
    return 0


def reset(url: str) -> None:
    """Empty a given ledger's outbox and transactions, so each round starts alike."""
    from sqlalchemy import delete

    from pesabridge.store.schema import attempts, evidence
    from pesabridge.store.schema import transactions as txn_table

    store = Store.open(url)
    try:
        with store.write() as conn:
            for table in (attempts, deliveries, evidence, txn_table):
                conn.execute(delete(table))
    finally:
        store.close()


if __name__ == "__main__":
    # The event loop the runtime uses (uvloop where installed), for both phases.
    sys.exit(aio.run(main()))
