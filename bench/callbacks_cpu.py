"""CPU per callback of the callback chain in-process: the app called directly, no HTTP server.

``bench/callbacks.py`` measures the whole server under wrk; on a shared machine its rate
and even its CPU time per acknowledgement drift between identical runs. This drives the
ASGI app that ``pesabridge serve`` builds (fast path, Daraja parser, group commit,
SQLite ledger) with ``--concurrency`` callers, each sending fresh C2B confirmations, and
reports user and system CPU per callback, the time inside ``record_batch`` and the
latency of each call. ``--stub`` takes parts away to see what they cost:

* ``ledger``: the group commit answers at once (the chain without any database work);
* ``parse``: the parsed observation is a copy of one template with a fresh receipt.

For figures that do not drift, count instructions instead of seconds: run it under
``valgrind --tool=callgrind`` at two ``--count`` values and divide the difference of the
totals by the difference of the counts (start-up cancels out).

    .venv/bin/python bench/callbacks_cpu.py                  # 20,000 callbacks
    .venv/bin/python bench/callbacks_cpu.py --stub ledger --count 5000
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import gc
import itertools
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from revision import commit_id

from pesabridge.aio import run as aio_run
from pesabridge.config import parse_config
from pesabridge.logs import configure_logging
from pesabridge.runtime import Runtime
from pesabridge.sources.callback import endpoint
from pesabridge.store import Store
from pesabridge.store.ledger import RecordResult


def body(n: int) -> bytes:
    """A Daraja C2B confirmation with receipt number ``n`` (as bench/callbacks.lua sends)."""
    return (
        f'{{"TransactionType":"Pay Bill","TransID":"M{n:09d}","TransTime":"20240115093012",'
        f'"TransAmount":"{100 + n % 900}.00","BusinessShortCode":"600977",'
        f'"BillRefNumber":"INV-{n}","InvoiceNumber":"","OrgAccountBalance":"",'
        '"ThirdPartyTransID":"","MSISDN":"2547 ***** 126","FirstName":"WRK"}'
    ).encode()


def scope_for(data: bytes) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/c2b/confirmation",
        "raw_path": b"/c2b/confirmation",
        "query_string": b"",
        "root_path": "",
        "client": ("127.0.0.1", 5555),
        "server": ("127.0.0.1", 80),
        "headers": [
            (b"host", b"bench"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()),
        ],
    }


def stub(runtime: Runtime, parts: list[str]) -> None:
    """Take the named parts out of the chain (see the module docs)."""
    source: Any = runtime.callbacks[0]
    if "parse" in parts:
        template = source.parse(body(999_999_999), "c2b:template", "application/json")[0]
        numbers = itertools.count()

        def parse(_body: bytes, _source: str, _type: str | None) -> list[Any]:
            observation = copy.copy(template)
            transaction = copy.copy(template.transaction)
            object.__setattr__(transaction, "receipt", f"P{next(numbers):09d}")
            object.__setattr__(observation, "transaction", transaction)
            return [observation]

        source.parse = parse
    if "ledger" in parts:

        async def submit_bulk(_bulk: object, _payload: object) -> RecordResult:
            return RecordResult(new=1, transaction_ids=[1], new_ids=[1])

        runtime.committer.submit_bulk = submit_bulk  # type: ignore[method-assign,assignment]


def timed_record_batch(totals: list[float]) -> Callable[..., RecordResult]:
    """``record_batch`` as the callback source calls it, adding its CPU time and rows."""
    real = endpoint.record_batch

    def record_batch(conn: Any, observations: Any, *rest: Any) -> RecordResult:
        started = time.process_time()
        result = real(conn, observations, *rest)
        totals[0] += time.process_time() - started
        totals[1] += len(observations)
        return result

    return record_batch


async def call(app: Any, n: int) -> float:
    """Callback ``n`` through the app; its latency in seconds."""
    data = body(n)
    messages: list[dict[str, Any]] = [{"type": "http.request", "body": data}]
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return messages.pop()

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    began = time.perf_counter()
    await app(scope_for(data), receive, send)
    latency = time.perf_counter() - began
    if sent[0]["status"] != 200:
        raise SystemExit(f"callback {n} answered {sent[0]['status']}")
    return latency


async def drive(runtime: Runtime, count: int, concurrency: int, start: int) -> list[float]:
    """``count`` callbacks from ``concurrency`` callers; each call's latency in seconds."""
    numbers = itertools.count(start)
    stop = start + count
    latencies: list[float] = []

    async def caller() -> None:
        while (n := next(numbers)) < stop:
            latencies.append(await call(runtime.app, n))

    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return latencies


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(dir=args.workdir) as workdir:
        await measure(args, f"sqlite:///{Path(workdir) / 'ledger.db'}")


async def measure(args: argparse.Namespace, database: str) -> None:
    """Drive the app on a fresh ledger at ``database`` and print the figures."""
    config = parse_config(
        {
            "database": database,
            "sources": [{"name": "c2b", "type": "daraja-c2b", "path": "/c2b"}],
            "sinks": [{"name": "erp", "type": "http", "url": "http://127.0.0.1:9/x"}],
            "routes": [{"from": ["c2b"], "to": ["erp"]}],
        }
    )
    Store.open(database).close()
    runtime = Runtime(config)
    gc.collect()  # as `pesabridge serve` does (cli/run.py): the start-up heap frozen
    gc.freeze()
    stub(runtime, args.stub)
    ledger = [0.0, 0]
    endpoint.record_batch = timed_record_batch(ledger)  # type: ignore[assignment]
    try:
        await drive(runtime, args.warmup, args.concurrency, 0)  # connections, caches
        ledger[:] = [0.0, 0]
        usage = resource.getrusage(resource.RUSAGE_SELF)
        began = time.perf_counter()
        latencies = await drive(runtime, args.count, args.concurrency, args.warmup)
        wall = time.perf_counter() - began
        after = resource.getrusage(resource.RUSAGE_SELF)
    finally:
        runtime.committer.close()
    n = args.count
    user = (after.ru_utime - usage.ru_utime) / n * 1e6
    system = (after.ru_stime - usage.ru_stime) / n * 1e6
    latencies.sort()
    print(
        f"commit {commit_id()}, {n} callbacks, {args.concurrency} callers,"
        f" stubbed: {','.join(args.stub) or 'nothing'}"
    )
    print(f"CPU per callback: {user + system:.1f} us ({user:.1f} user, {system:.1f} system)")
    if ledger[1]:
        print(f"record_batch: {ledger[0] / ledger[1] * 1e6:.1f} us CPU per row")
    print(
        f"committer: {runtime.committer.batches} batches, {runtime.committer.items} items,"
        f" {runtime.committer.checkpoints} checkpoints"
    )
    print(
        f"{n / wall:.0f} callbacks/s; latency p50 {latencies[n // 2] * 1e3:.2f} ms,"
        f" p99 {latencies[int(n * 0.99)] * 1e3:.2f} ms"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--stub", action="append", choices=("ledger", "parse"), default=[])
    parser.add_argument("--workdir", type=Path, default=Path(__file__).parent / "out")
    arguments = parser.parse_args()
    arguments.workdir.mkdir(parents=True, exist_ok=True)
    configure_logging("ERROR")
    aio_run(main(arguments))
    sys.exit(0)
