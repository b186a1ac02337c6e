"""Running the app with callback sources under real uvicorn, and posting to it."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import func, select

from pesabridge.config import parse_config
from pesabridge.runtime import Runtime
from pesabridge.store import Store
from pesabridge.store.schema import failed_attempts, rejects, transactions


@dataclass
class Reply:
    status: int
    body: bytes
    headers: Mapping[str, str]

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@contextlib.asynccontextmanager
async def serving(
    store: Store, sources: list[dict[str, Any]], environ: dict[str, str] | None = None
) -> AsyncIterator[Runtime]:
    """The runtime serving ``sources`` (routed to one http sink) on a free port."""
    config = parse_config(
        {
            "server": {"port": 0},
            "sources": sources,
            "sinks": [{"name": "erp", "type": "http", "url": "http://127.0.0.1:9/x"}],
            "routes": [{"from": [s["name"] for s in sources], "to": ["erp"]}],
        },
        environ=environ or {},
    )
    running = Runtime(config, store=store)
    stop = asyncio.Event()
    task = asyncio.create_task(running.run(stop, work=False))
    await running.started.wait()
    try:
        yield running
    finally:
        stop.set()
        await task


async def post(
    runtime: Runtime,
    path: str,
    body: bytes,
    *,
    headers: Mapping[str, str] | None = None,
    content_type: str = "application/json",
    method: str = "POST",
) -> Reply:
    all_headers = {"Content-Type": content_type, **(headers or {})}
    async with (
        aiohttp.ClientSession() as client,
        client.request(
            method,
            f"http://127.0.0.1:{runtime.port}{path}",
            data=body,
            headers=all_headers,
        ) as response,
    ):
        return Reply(response.status, await response.read(), dict(response.headers))


def count(store: Store, table: Any) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def counts(store: Store) -> tuple[int, int, int]:
    """(transactions, failed attempts, rejects)."""
    return count(store, transactions), count(store, failed_attempts), count(store, rejects)


def receipts(store: Store) -> dict[str, str]:
    """receipt -> account, for every recorded transaction."""
    with store.read() as conn:
        rows = conn.execute(select(transactions.c.receipt, transactions.c.account)).all()
    return {r[0]: r[1] for r in rows}


def sample(samples_dir: Path, name: str) -> bytes:
    return (samples_dir / name).read_bytes()


def expected(samples_dir: Path, name: str) -> list[dict[str, Any]]:
    path = samples_dir / "expected" / f"{name}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
