"""The Daraja C2B endpoint, served by uvicorn: answered only after commit, once per TransID."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from pesabridge.config import parse_config
from pesabridge.runtime import Runtime
from pesabridge.store import Store

CONFIRMATION = "daraja/c2b_confirmation_v1_hashed.json"


@pytest.fixture
async def runtime(store: Store) -> AsyncIterator[Runtime]:
    config = parse_config(
        {
            "server": {"port": 0},
            "sources": [{"name": "daraja", "type": "daraja-c2b", "path": "/mpesa/c2b"}],
            "sinks": [{"name": "erp", "type": "http", "url": "http://127.0.0.1:9/x"}],
            "routes": [{"from": ["daraja"], "to": ["erp"]}],
        },
        environ={},
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


async def post(runtime: Runtime, path: str, body: bytes) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as client,
        client.post(
            f"http://127.0.0.1:{runtime.port}{path}",
            data=body,
            headers={"Content-Type": "application/json"},
        ) as response,
    ):
        return response.status, await response.json()


async def test_confirmation_is_committed_before_it_is_acknowledged(
    runtime: Runtime, store: Store, samples_dir: Path
) -> None:
    body = (samples_dir / CONFIRMATION).read_bytes()
    status, answer = await post(runtime, "/mpesa/c2b/confirmation", body)
    assert (status, answer) == (200, {"ResultCode": 0, "ResultDesc": "Success"})
    # by the time Daraja has its answer, the transaction and its delivery are durable
    counts = store.status()
    assert counts["transactions"] == 1
    assert counts["deliveries"] == {"erp": {"pending": 1}}
    (view,) = store.deliveries()
    assert view.transaction.receipt == "SE51H7QK2M"
    assert str(view.transaction.amount) == "1500.00"


async def test_repeated_transid_is_acknowledged_and_stored_once(
    runtime: Runtime, store: Store, samples_dir: Path
) -> None:
    body = (samples_dir / CONFIRMATION).read_bytes()
    answers = await asyncio.gather(
        *(post(runtime, "/mpesa/c2b/confirmation", body) for _ in range(5))
    )
    assert all(a == (200, {"ResultCode": 0, "ResultDesc": "Success"}) for a in answers)
    # Daraja resends with a fresh body formatting now and then: still one transaction
    reformatted = json.dumps(json.loads(body)).encode()
    assert (await post(runtime, "/mpesa/c2b/confirmation", reformatted))[0] == 200
    counts = store.status()
    assert counts["transactions"] == 1
    assert counts["evidence"] == 2  # the two distinct bodies, each kept once
    assert counts["deliveries"] == {"erp": {"pending": 1}}


async def test_validation_is_answered_and_never_posted(
    runtime: Runtime, store: Store, samples_dir: Path
) -> None:
    body = (samples_dir / "daraja/c2b_validation_request.json").read_bytes()
    status, answer = await post(runtime, "/mpesa/c2b/validation", body)
    assert (status, answer) == (200, {"ResultCode": "0", "ResultDesc": "Accepted"})
    counts = store.status()
    assert counts["transactions"] == 0
    assert counts["deliveries"] == {}


async def test_malformed_confirmation_is_quarantined_and_refused(
    runtime: Runtime, store: Store, samples_dir: Path
) -> None:
    document = json.loads((samples_dir / CONFIRMATION).read_bytes())
    document["TransAmount"] = "15OO.00"
    status, answer = await post(runtime, "/mpesa/c2b/confirmation", json.dumps(document).encode())
    assert status == 400
    assert answer["ResultCode"] == 1
    assert "TransAmount" in str(answer["ResultDesc"])
    counts = store.status()
    assert counts["transactions"] == 0
    assert counts["rejects"] == 1
    # and a good confirmation right after is still taken
    good = (samples_dir / CONFIRMATION).read_bytes()
    assert (await post(runtime, "/mpesa/c2b/confirmation", good))[0] == 200
    assert store.status()["transactions"] == 1


async def test_health_and_metrics_expose_no_payment_data(
    runtime: Runtime, samples_dir: Path
) -> None:
    body = (samples_dir / CONFIRMATION).read_bytes()
    await post(runtime, "/mpesa/c2b/confirmation", body)
    async with aiohttp.ClientSession() as client:
        async with client.get(f"http://127.0.0.1:{runtime.port}/healthz") as response:
            assert response.status == 200
            assert await response.json() == {"status": "ok"}
        async with client.get(f"http://127.0.0.1:{runtime.port}/metrics") as response:
            text = await response.text()
    assert 'pesabridge_callbacks_total{answer="confirmed",source="daraja"}' in text
    assert "SE51H7QK2M" not in text
    assert "7132104d" not in text
