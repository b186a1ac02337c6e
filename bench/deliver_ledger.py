"""The ledger's share of a delivery, alone: CPU per delivery of claiming and recording.

No HTTP and no event loop: a fresh SQLite ledger of N pending deliveries is drained by
``Store.claim`` (``--batch`` rows at a time) and ``Store.finish_many`` (every attempt
delivered), and the process's CPU time in each is summed. Steadier than the end-to-end
delivery benchmark on a shared machine, because it measures only the part under change;
run it alternately against two trees (``PYTHONPATH=<other tree>/src``) to compare.

    .venv/bin/python bench/deliver_ledger.py --count 10000 --repeat 3
"""

from __future__ import annotations

import argparse
import gc
import resource
import statistics
import tempfile

from deliver import _observed, transactions

from pesabridge.store import AttemptRecord, Sighting, Store, utcnow


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def one_round(count: int, batch: int) -> tuple[float, float]:
    """(claim, finish) CPU microseconds per delivery for draining ``count`` deliveries."""
    with tempfile.TemporaryDirectory() as folder:
        store = Store.open(f"sqlite:///{folder}/ledger.db")
        try:
            store.record(
                [_observed(t) for t in transactions(count)],
                Sighting("callback", "callback"),
                lambda _t: ["erp"],
            )
            gc.collect()
            gc.freeze()
            claiming = finishing = 0.0
            done = 0
            while True:
                started = cpu_seconds()
                claimed = store.claim("bench", limit=batch, sinks=["erp"])
                claiming += cpu_seconds() - started
                if not claimed:
                    break
                now = utcnow()
                finished = [
                    (
                        c,
                        AttemptRecord(
                            worker="bench",
                            number=c.attempt,
                            started_at=now,
                            finished_at=utcnow(),
                            outcome="delivered",
                            status_code=201,
                            response='{"id": "x"}',
                            request_summary="POST /payments",
                        ),
                        None,
                    )
                    for c in claimed
                ]
                started = cpu_seconds()
                kept = store.finish_many(finished)
                finishing += cpu_seconds() - started
                if not all(kept):
                    raise SystemExit("an outcome was not recorded")
                done += len(claimed)
            if done != count:
                raise SystemExit(f"drained {done} of {count}")
        finally:
            store.close()
            gc.unfreeze()
    return claiming / count * 1e6, finishing / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=48, help="rows per claim")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rounds = [one_round(args.count, args.batch) for _ in range(args.repeat)]
    claim = statistics.median(r[0] for r in rounds)
    finish = statistics.median(r[1] for r in rounds)
    print(
        f"claim {claim:.1f} us, finish {finish:.1f} us, finish/claim {finish / claim:.2f} "
        f"(CPU per delivery, median of {[(round(c, 1), round(f, 1)) for c, f in rounds]})"
    )


if __name__ == "__main__":
    main()
