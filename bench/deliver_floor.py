"""The delivery benchmark's *ledger floor*: the bare client plus the ledger's statements.

What any worker that keeps the outbox's contract must do besides posting: claim due rows
under a lease (the worker's own two due-row reads and its lease ``UPDATE``, committed
before anything is sent), and record every attempt (the worker's own attempt ``INSERT``
and delivered ``UPDATE``, committed together every 20 ms). The statements are the
worker's, compiled from :mod:`pesabridge.store.claims`; everything around them is as bare
as the bare client: a raw ``sqlite3`` connection, no models rebuilt from the rows, one
timestamp per batch. Each body is encoded (``canonical_json``, the HTTP sink's default
encoder) from the transaction when its row is claimed, since the issue counts encoding
in the delivery rate. No worker that records what the issue requires can be faster than
this on the same ledger, so ``floor / bare`` bounds the ratio any implementation can
reach here.
"""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from sqlalchemy.dialects import sqlite

from pesabridge.encoders import canonical_json
from pesabridge.model import Transaction
from pesabridge.store.claims import _attempt_sql, _delivered, _due_select, _id_params, _mark
from pesabridge.store.connector import Prepared

RECORD_EVERY = 0.02
LEASE = timedelta(seconds=120)


class _Ledger:
    """The worker's statements on a raw connection, with the store's pragmas."""

    def __init__(self, path: str) -> None:
        dialect = sqlite.dialect(paramstyle="qmark")
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        for pragma in ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON"):
            self.db.execute(f"PRAGMA {pragma}")
        self.pending = Prepared(_due_select("pending", 1), dialect)
        self.lapsed = Prepared(_due_select("lapsed", 1), dialect)
        self.mark = Prepared(_mark(), dialect)
        self.delivered = Prepared(_delivered(), dialect)
        self.attempt = _attempt_sql("qmark")

    def claim(self, limit: int) -> list[tuple[int, int, str]]:
        """(delivery id, attempt, receipt) of up to ``limit`` due rows, leased."""
        now = datetime.now(UTC)
        at, expires = _text(now), _text(now + LEASE)
        params: dict[str, Any] = {"now": at, "limit": limit, "sink_0": "erp"}
        cur = self.db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        rows = [
            *cur.execute(self.pending.sql, self.pending.bind(params)).fetchall(),
            *cur.execute(self.lapsed.sql, self.lapsed.bind(params)).fetchall(),
        ]
        rows.sort(key=lambda r: (r[1], r[0]))
        del rows[limit:]
        ids = [r[0] for r in rows]
        for i in range(0, len(ids), 64):
            marking = {"worker": "floor", "expires": expires, "now": at}
            cur.execute(self.mark.sql, self.mark.bind({**marking, **_id_params(ids[i : i + 64])}))
        cur.execute("COMMIT")
        # Columns: id, next_attempt_at, transaction_id, sink, attempts, provider, account,
        # receipt, ...
        return [(r[0], r[4] + 1, r[7]) for r in rows]

    def record(self, done: list[tuple[int, int, int]]) -> None:
        """Each (delivery id, attempt, status) as a delivered attempt."""
        at = _text(datetime.now(UTC))
        cur = self.db.cursor()
        cur.execute("BEGIN IMMEDIATE")
        cur.executemany(
            self.attempt,
            [(i, n, "floor", at, at, "delivered", s, None, "", False, None) for i, n, s in done],
        )
        cur.executemany(
            self.delivered.sql,
            [
                self.delivered.bind(
                    {
                        "b_id": i,
                        "b_last_status": s,
                        "b_last_error": None,
                        "b_response": "",
                        "b_updated_at": at,
                        "b_delivered_at": at,
                        "b_document_id": None,
                    }
                )
                for i, _n, s in done
            ],
        )
        cur.execute("COMMIT")


def _text(moment: datetime) -> str:
    return moment.isoformat(" ", "microseconds")[:26]


async def floor(
    url: str, path: str, known: dict[str, tuple[Transaction, str]], concurrency: int, batch: int
) -> int:
    """Deliver every pending row of the ledger at ``path``; returns how many were recorded.

    ``known``: each receipt's transaction and idempotency key.
    """
    ledger = _Ledger(path)
    ready: asyncio.Queue[tuple[int, int, bytes, str] | None] = asyncio.Queue()
    drained = asyncio.Event()
    done: list[tuple[int, int, int]] = []
    low = max(1, batch // 2)
    recorded = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def client() -> None:
            while (item := await ready.get()) is not None:
                if ready.qsize() < low:
                    drained.set()
                delivery, attempt, body, key = item
                headers = {
                    "Content-Type": "application/json",
                    "Idempotency-Key": key,
                    "User-Agent": "floor",
                }
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    done.append((delivery, attempt, response.status))

        async def recorder(stop: asyncio.Event) -> None:
            nonlocal recorded
            while not (stop.is_set() and not done):
                await asyncio.sleep(RECORD_EVERY)
                if done:
                    taken = done[:]
                    del done[:]
                    ledger.record(taken)
                    recorded += len(taken)

        clients = [asyncio.create_task(client()) for _ in range(concurrency)]
        stop = asyncio.Event()
        recording = asyncio.create_task(recorder(stop))
        while True:
            room = 2 * batch - ready.qsize()
            claimed = ledger.claim(room)
            for delivery, attempt, receipt in claimed:
                txn, key = known[receipt]
                body = canonical_json(txn, idempotency_key=key)
                ready.put_nowait((delivery, attempt, body, key))
            if not claimed and ready.empty():
                break
            drained.clear()
            if ready.qsize() >= low:
                await drained.wait()
            elif not claimed:
                await asyncio.sleep(0.001)
        for _ in clients:
            ready.put_nowait(None)
        await asyncio.gather(*clients)
        stop.set()
        await recording
    ledger.db.close()
    return recorded
