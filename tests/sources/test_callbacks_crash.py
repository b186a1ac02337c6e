"""kill -9 of ``pesabridge serve`` during a burst: every acknowledged callback is in the ledger."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import yaml

from pesabridge.store import Store

from ..helpers import free_port
from .callback_helpers import receipts


async def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as client:
        while time.monotonic() < deadline:
            assert proc.poll() is None, "pesabridge serve exited early"
            try:
                async with client.get(f"{url}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("pesabridge serve did not become healthy")


@pytest.mark.slow
async def test_every_acknowledged_callback_survives_kill_9(
    db_url: str, tmp_path: Path, samples_dir: Path
) -> None:
    port = free_port()
    config = {
        "database": db_url,
        "server": {"host": "127.0.0.1", "port": port},
        "sources": [{"name": "c2b", "type": "daraja-c2b", "path": "/c2b"}],
        "sinks": [{"name": "erp", "type": "http", "url": "http://127.0.0.1:9/x"}],
        "routes": [{"from": ["c2b"], "to": ["erp"]}],
    }
    config_path = tmp_path / "pesabridge.yaml"
    config_path.write_text(yaml.safe_dump(config))
    Store.open(db_url).close()  # migrate first, so the server starts at once
    proc = subprocess.Popen(
        [sys.executable, "-m", "pesabridge", "serve", "-c", str(config_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    url = f"http://127.0.0.1:{port}"
    document = json.loads((samples_dir / "daraja/c2b_confirmation_v1_hashed.json").read_bytes())
    acked: list[str] = []
    try:
        await wait_healthy(url, proc)
        queue: asyncio.Queue[str] = asyncio.Queue()
        for i in range(20000):
            queue.put_nowait(f"SK{i:08d}")

        async def sender(client: aiohttp.ClientSession) -> None:
            while not queue.empty():
                receipt = queue.get_nowait()
                body = json.dumps({**document, "TransID": receipt}).encode()
                try:
                    async with client.post(
                        f"{url}/c2b/confirmation",
                        data=body,
                        headers={"Content-Type": "application/json"},
                    ) as response:
                        answer = await response.json()
                        if response.status == 200 and answer == {
                            "ResultCode": 0,
                            "ResultDesc": "Success",
                        }:
                            acked.append(receipt)
                except (TimeoutError, aiohttp.ClientError, json.JSONDecodeError):
                    return  # the server is gone

        async def killer() -> None:
            while len(acked) < 300:
                await asyncio.sleep(0.005)
            os.kill(proc.pid, signal.SIGKILL)

        async with aiohttp.ClientSession() as client:
            await asyncio.wait_for(
                asyncio.gather(killer(), *(sender(client) for _ in range(32))), timeout=90
            )
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(acked) >= 300
    # restart: open the ledger as the next process would
    store = Store.open(db_url)
    try:
        stored = receipts(store)
        status = store.status()
    finally:
        store.close()
    missing = [r for r in acked if r not in stored]
    assert missing == []
    assert status["deliveries"]["erp"]["pending"] == len(stored)  # each with its outbox row
