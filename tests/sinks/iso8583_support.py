"""What the ISO 8583 sink tests share: the real host in the test's loop, a sink on it,
and a worker loop that delivers until nothing is due."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pesabridge.config import parse_config
from pesabridge.delivery import DeliveryWorker, RetryPolicy
from pesabridge.devtools.iso8583_host import Iso8583Host
from pesabridge.sinks.iso8583 import Iso8583Sink
from pesabridge.store import Sighting, Store

from ..helpers import observed, payment

FAST = RetryPolicy(max_attempts=8, base=0.01, cap=0.02)


@asynccontextmanager
async def running_host(**options: Any) -> AsyncIterator[Iso8583Host]:
    host = Iso8583Host(**options)
    await host.start()
    try:
        yield host
    finally:
        await host.stop()


def iso_sink(port: int, store: Store | None = None, **extra: Any) -> Iso8583Sink:
    section = {
        "name": "core",
        "type": "iso8583",
        "host": "127.0.0.1",
        "port": port,
        "response_timeout": 0.3,
        "connect_timeout": 2,
        "reconnect_base": 0.05,
        "reconnect_cap": 0.2,
        **extra,
    }
    config = parse_config({"sinks": [section]}, environ={})
    return Iso8583Sink(config.sinks[0], store)  # type: ignore[arg-type]


def record(store: Store, *receipts: str) -> None:
    store.record(
        [observed(payment(r)) for r in receipts],
        Sighting("callback", "callback"),
        lambda _t: ["core"],
    )


async def deliver_all(
    store: Store, sink: Iso8583Sink, rounds: int = 40, *, close: bool = True
) -> None:
    """Run the worker until nothing is pending (or ``rounds`` passes); then close the
    sink unless told not to."""
    worker = DeliveryWorker(store, {"core": sink}, {"core": FAST})
    try:
        for _ in range(rounds):
            await worker.run_once()
            if not any(v.state in ("pending", "in_flight") for v in store.deliveries()):
                return
            await asyncio.sleep(0.03)
    finally:
        if close:
            await worker.close()


def net(host: Iso8583Host) -> dict[str, int]:
    return host.state.net()


def financial(host: Iso8583Host, rrn: str) -> list[str]:
    """The MTIs the host got about ``rrn``, in order."""
    return [mti for mti, _stan in host.state.trail(rrn)]
