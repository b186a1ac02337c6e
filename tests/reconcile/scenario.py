"""Building a reconciliation scenario in a real ledger: callbacks through the Daraja C2B
parser, the statement through ``ingest_file`` (as the sources do)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from pesabridge.config import Config, parse_config
from pesabridge.delivery import DeliveryWorker, RetryPolicy
from pesabridge.devtools.reconcile_days import Day, generate_day
from pesabridge.formats.base import Observation
from pesabridge.formats.daraja_c2b import parse_c2b_payload
from pesabridge.pipeline import ingest_file
from pesabridge.routing import Routing
from pesabridge.sinks.http import HttpSink
from pesabridge.store import Sighting, Store

DAY = date(2024, 5, 6)
ACCOUNT = "600977"


def config(url: str = "http://127.0.0.1:9/payments", *, statements_routed: bool = False) -> Config:
    """A callback source and a statement folder; callbacks (and, when asked, statements)
    go to the ``erp`` HTTP sink."""
    sources: list[str] = ["daraja", "statements"] if statements_routed else ["daraja"]
    return parse_config(
        {
            "sources": [
                {"name": "daraja", "type": "daraja-c2b", "path": "/daraja/c2b"},
                {"name": "statements", "type": "folder", "path": "inbox"},
            ],
            "sinks": [{"name": "erp", "type": "http", "url": url, "timeout": {"read": 5}}],
            "routes": [{"from": sources, "to": ["erp"], "entries": ["payment"]}],
        },
        environ={},
    )


def receive_callbacks(store: Store, bodies: Sequence[bytes], cfg: Config | None = None) -> None:
    """Record callback bodies as the Daraja endpoint does (one request each)."""
    route = Routing(cfg.routes).router_for("daraja") if cfg else (lambda _t: [])
    for number, body in enumerate(bodies):
        item = parse_c2b_payload(body, f"req-{number}")
        assert isinstance(item, Observation), item
        store.record([item], Sighting("callback", "callback"), route)


def ingest_statement(store: Store, path: Path, cfg: Config | None = None) -> int:
    route = Routing(cfg.routes).router_for("statements") if cfg else (lambda _t: [])
    summary = ingest_file(store, path, source="statements", route=route)
    assert summary.error is None
    assert summary.rejected == 0
    assert summary.file_id is not None
    return summary.file_id


def build_day(
    store: Store,
    tmp_path: Path,
    *,
    anomalies: bool = True,
    cfg: Config | None = None,
    count: int = 40,
    day: date = DAY,
    seed: int = 11,
) -> tuple[Day, Path, int]:
    """Callbacks first (they arrive during the day), then the evening statement."""
    generated = generate_day(day, count, anomalies=anomalies, seed=seed)
    receive_callbacks(store, generated.callbacks, cfg)
    path = generated.write_statement(tmp_path / f"ORG_{ACCOUNT}_{day}.csv")
    return generated, path, ingest_statement(store, path, cfg)


def http_sink(cfg: Config) -> HttpSink:
    return HttpSink(cfg.sinks[0])  # type: ignore[arg-type]


async def drain(store: Store, cfg: Config, seconds: float = 30) -> None:
    """Deliver until nothing is pending or in flight."""
    sink = http_sink(cfg)
    worker = DeliveryWorker(
        store, {"erp": sink}, {"erp": RetryPolicy(max_attempts=5, base=0.05, cap=0.2)}
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    try:
        while loop.time() < deadline:
            await worker.run_once()
            per_state: dict[str, Any] = store.status()["deliveries"].get("erp", {})
            if not per_state.get("pending") and not per_state.get("in_flight"):
                return
            await asyncio.sleep(0.05)
        pytest.fail(f"deliveries still open after {seconds}s: {store.status()['deliveries']}")
    finally:
        await sink.close()
