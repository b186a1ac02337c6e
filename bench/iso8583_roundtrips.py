"""ISO 8583 benchmark: round trips per second on one connection to the test host, with
several requests in flight against one at a time, in the same run.

The host (``pesabridge.devtools.iso8583_host``, 2-byte length framing, books every
message) runs in a child process. The client is the sink's own connection
(``pesabridge.sinks.iso8583.connection``): each round trip encodes an advice, frames it,
writes it, and matches the 0230 to its request by STAN and RRN.

* **serial**: one message at a time — send, wait for its answer, send the next;
* **pipelined**: ``--in-flight`` messages outstanding at once on the same single
  connection, answers matched as they come.

Each phase talks to a fresh host, which must end with exactly N postings, none of them
doubled. The figure is pipelined/serial (the issue measured about 2,400/s serial here).

    .venv/bin/python bench/iso8583_roundtrips.py        # 20,000 round trips, 32 in flight
    .venv/bin/python bench/iso8583_roundtrips.py --count 5000 --in-flight 8 --repeat 3 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from revision import commit_id

from pesabridge.devtools.iso8583_host import Iso8583Host
from pesabridge.encoders.base import MessageContext
from pesabridge.encoders.iso8583 import Iso8583Encoder
from pesabridge.model import Counterparty, Direction, Entry, Transaction
from pesabridge.sinks.iso8583.connection import Iso8583Connection
from pesabridge.sinks.iso8583.framing import Framing

START = datetime(2024, 5, 6, 6, 0, tzinfo=UTC)


def _serve(queue: Any, stop: Any) -> None:
    async def run() -> None:
        host = Iso8583Host()
        await host.start()
        queue.put(host.port)
        while not stop.is_set():
            await asyncio.sleep(0.05)
        state = host.state
        queue.put((sum(state.net().values()), len(state.double_postings)))
        await host.stop()

    asyncio.run(run())


class HostProcess:
    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.queue = ctx.Queue()
        self.stop = ctx.Event()
        self.process = ctx.Process(target=_serve, args=(self.queue, self.stop), daemon=True)

    def __enter__(self) -> int:
        self.process.start()
        port: int = self.queue.get(timeout=30)
        return port

    def finish(self) -> tuple[int, int]:
        self.stop.set()
        result: tuple[int, int] = self.queue.get(timeout=60)
        self.process.join(10)
        return result

    def __exit__(self, *_exc: object) -> None:
        if self.process.is_alive():
            self.process.kill()


def messages(count: int) -> list[dict[str, str]]:
    """``count`` advices, each with its own STAN and RRN."""
    encoder = Iso8583Encoder()
    now = datetime.now(UTC)
    built = []
    for i in range(count):
        txn = Transaction(
            provider="mpesa",
            account="600977",
            receipt=f"SBENCH{i:06d}",
            entry=Entry.PAYMENT,
            direction=Direction.CREDIT,
            amount=Decimal(100 + i % 900) + Decimal("0.50"),
            currency="KES",
            occurred_at=START + timedelta(seconds=i),
            counterparty=Counterparty(msisdn="254712345678", name="JANE DOE"),
            reference=f"INV-{i}",
        )
        built.append(encoder.message(txn, MessageContext(stan=i % 999_999 + 1, now=now)))
    return built


async def run_phase(port: int, batch: list[dict[str, str]], in_flight: int) -> float:
    """Seconds for every round trip of ``batch`` with ``in_flight`` outstanding at once."""
    spec = Iso8583Encoder().spec
    connection = await Iso8583Connection.open("127.0.0.1", port, Framing(), spec, 10)
    try:
        queue = iter(batch)

        async def client() -> None:
            for fields in queue:
                answer = await connection.exchange(fields, 30)
                if answer.get("39") != "00":
                    raise RuntimeError(f"host answered {answer.get('39')}")

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(in_flight)))
        return time.perf_counter() - started
    finally:
        await connection.aclose()


async def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--in-flight", type=int, default=32)
    parser.add_argument("--repeat", type=int, default=1, help="Alternate the phases K times")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if not 1 <= args.count <= 999_999:
        parser.error("--count must be 1..999999 (one STAN each)")
    batch = messages(args.count)
    runs: dict[str, list[float]] = {"serial": [], "pipelined": []}
    ok = True
    for round_ in range(args.repeat):
        # Alternate which phase goes first, so a change in the machine's load between
        # the two halves of a round does not always favour the same one.
        order = ("serial", "pipelined") if round_ % 2 == 0 else ("pipelined", "serial")
        for phase in order:
            host = HostProcess()
            with host as port:
                seconds = await run_phase(port, batch, 1 if phase == "serial" else args.in_flight)
                posted, doubled = host.finish()
            ok = ok and posted == args.count and doubled == 0
            runs[phase].append(args.count / seconds)
    serial = statistics.median(runs["serial"])
    pipelined = statistics.median(runs["pipelined"])
    ratios = [p / s for p, s in zip(runs["pipelined"], runs["serial"], strict=True)]
    results: dict[str, Any] = {
        "commit": commit_id(),
        "count": args.count,
        "in_flight": args.in_flight,
        "serial_per_second": round(serial, 1),
        "pipelined_per_second": round(pipelined, 1),
        "runs": {k: [round(v, 1) for v in r] for k, r in runs.items()},
        "ratios": [round(r, 3) for r in ratios],
        "ratio": round(statistics.median(ratios), 3),
        "correct": ok,
    }
    if args.json:
        print(json.dumps(results))
    else:
        print(
            f"ISO 8583 round trips on one connection, {args.count} each, commit {results['commit']}"
        )
        print(f"     serial: {serial:>9.1f}/s  (one at a time; runs {results['runs']['serial']})")
        print(
            f"  pipelined: {pipelined:>9.1f}/s  ({args.in_flight} in flight; "
            f"runs {results['runs']['pipelined']})"
        )
        print(f"      ratio: {results['ratio']:.2f} (median of {results['ratios']})")
        if not ok:
            print("WRONG RESULT: the host did not book every message exactly once")
    return 0 if ok else 2


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
