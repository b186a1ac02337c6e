"""The provider simulator against the real server: every simulated callback is accepted."""

from __future__ import annotations

import asyncio
import sys

import pytest

from pesabridge.devtools.simulator import Simulator
from pesabridge.store import Store

from .callback_helpers import counts, serving

SOURCES = [
    {"name": "c2b", "type": "daraja-c2b", "path": "/c2b"},
    {"name": "stk", "type": "daraja-stk", "path": "/stk", "account": "174379"},
    {"name": "k2", "type": "kopokopo", "path": "/k2", "signing_keys": ["sim-key"]},
    {"name": "airtel", "type": "airtel", "path": "/airtel", "account": "A1"},
    {"name": "mtn", "type": "mtn-momo", "path": "/mtn", "account": "M1"},
]
PATHS = {
    "daraja": "/c2b/confirmation",
    "stk": "/stk",
    "kopokopo": "/k2",
    "airtel": "/airtel",
    "mtn": "/mtn",
}


@pytest.mark.parametrize("provider", list(PATHS))
async def test_simulated_callbacks_are_all_recorded(store: Store, provider: str) -> None:
    async with serving(store, SOURCES) as running:
        url = f"http://127.0.0.1:{running.port}{PATHS[provider]}"
        report = await Simulator(provider, url, key="sim-key").run(count=40, concurrency=8)
    assert (report.sent, report.acknowledged, report.errors) == (40, 40, 0)
    assert counts(store) == (40, 0, 0)


async def test_simulate_command(store: Store) -> None:
    async with serving(store, SOURCES) as running:
        url = f"http://127.0.0.1:{running.port}/c2b/confirmation"
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *("-m", "pesabridge", "simulate", "daraja", "--url", url),
            *("--count", "20", "--rate", "200"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    assert "acknowledged 20" in out.decode()
    assert counts(store)[0] == 20
