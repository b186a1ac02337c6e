"""Callback benchmark: bounded load on ``pesabridge serve`` against a bare Starlette app.

Three servers, each a child process on a free port, each driven by the provider
simulator (``pesabridge.devtools.simulator``) with Daraja C2B confirmations, every one a
fresh receipt, at a fixed concurrency for a fixed time:

* **bare**: a Starlette app answering ``{"ResultCode":0,"ResultDesc":"Success"}`` with
  no work at all, served by the same uvicorn: the ceiling of the HTTP stack here;
* **grouped**: ``pesabridge serve`` on SQLite with group commit (the default);
* **per-request**: the same with ``server.commit_max_batch: 1`` (one transaction, one
  fsync, per callback): what group commit saves.

Afterwards the ledger must hold exactly the acknowledged callbacks. wrk is not used:
every request needs a distinct receipt, which the simulator gives without a Lua script.

    .venv/bin/python bench/callbacks.py                       # 64 concurrent, 10 s each
    .venv/bin/python bench/callbacks.py --seconds 5 --concurrency 32 --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from pesabridge.devtools.simulator import Report, Simulator
from pesabridge.store import Store

BARE_APP = """
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def confirm(request):
    await request.body()
    return JSONResponse({"ResultCode": 0, "ResultDesc": "Success"})

app = Starlette(routes=[Route("/c2b/confirmation", confirm, methods=["POST"]),
                        Route("/healthz", lambda r: JSONResponse({}), methods=["GET"])])
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning",
            access_log=False, lifespan="off")
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def wait_up(url: str, proc: subprocess.Popen[bytes]) -> None:
    async with aiohttp.ClientSession() as client:
        for _ in range(300):
            if proc.poll() is not None:
                raise SystemExit(f"server exited with {proc.returncode}")
            try:
                async with client.get(f"{url}/healthz") as reply:
                    if reply.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise SystemExit("server did not start")


def start_pesabridge(
    workdir: Path, port: int, max_batch: int
) -> tuple[subprocess.Popen[bytes], str]:
    database = f"sqlite:///{workdir / f'ledger-{max_batch}.db'}"
    config = {
        "database": database,
        "server": {"host": "127.0.0.1", "port": port, "commit_max_batch": max_batch},
        "sources": [{"name": "c2b", "type": "daraja-c2b", "path": "/c2b"}],
        "sinks": [{"name": "erp", "type": "http", "url": "http://127.0.0.1:9/x"}],
        "routes": [{"from": ["c2b"], "to": ["erp"]}],
    }
    path = workdir / f"pesabridge-{max_batch}.yaml"
    path.write_text(yaml.safe_dump(config))
    Store.open(database).close()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pesabridge", "serve", "-c", str(path), "--log-level", "ERROR"],
        stdout=subprocess.DEVNULL,
    )
    return proc, database


async def drive(url: str, seconds: float, concurrency: int) -> Report:
    simulator = Simulator("daraja", f"{url}/c2b/confirmation")
    return await simulator.run(duration=seconds, concurrency=concurrency)


async def phase(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    port = free_port()
    database = None
    if name == "bare":
        proc = subprocess.Popen([sys.executable, "-c", BARE_APP, str(port)])
    else:
        proc, database = start_pesabridge(workdir, port, 1 if name == "per-request" else 256)
    url = f"http://127.0.0.1:{port}"
    try:
        await wait_up(url, proc)
        report = await drive(url, args.seconds, args.concurrency)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    result: dict[str, Any] = {
        "phase": name,
        "acknowledged": report.acknowledged,
        "per_second": round(report.rate, 1),
        "p50_ms": round(report.percentile(50) * 1000, 2),
        "p99_ms": round(report.percentile(99) * 1000, 2),
        "errors": report.errors + sum(report.refused.values()),
    }
    if database is not None:
        store = Store.open(database)
        try:
            stored = store.status()["transactions"]
        finally:
            store.close()
        result["stored"] = stored
        result["correct"] = stored == report.acknowledged and result["errors"] == 0
    return result


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    base = args.workdir or Path(__file__).parent / "out"
    base.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        for name in ("bare", "grouped", "per-request"):
            results.append(await phase(name, args, Path(tmp)))
    bare = results[0]["per_second"] or 1.0
    print(f"{os.cpu_count()} CPUs, concurrency {args.concurrency}, {args.seconds:g} s per phase")
    print(f"{'phase':<12} {'acked':>8} {'per s':>9} {'x bare':>7} {'p50 ms':>8} {'p99 ms':>8}")
    for r in results:
        ratio = r["per_second"] / bare
        print(
            f"{r['phase']:<12} {r['acknowledged']:>8} {r['per_second']:>9.1f} {ratio:>7.2f}"
            f" {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f}"
            + ("" if "stored" not in r else f"  stored {r['stored']} correct {r['correct']}")
        )
    if args.json:
        print(json.dumps(results))
    return 0 if all(r.get("correct", True) for r in results) else 2


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
