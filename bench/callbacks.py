"""Callback benchmark: bounded load on ``pesabridge serve`` against a bare Starlette app.

Three servers, each a child process on a free port (the same uvicorn for all), driven
with Daraja C2B confirmations, every one a fresh receipt, at a fixed concurrency for a
fixed time:

* **bare**: a Starlette app answering ``{"ResultCode":0,"ResultDesc":"Success"}`` with
  no work at all: the ceiling of the HTTP stack here, measured in the same run;
* **grouped**: ``pesabridge serve`` on SQLite (WAL, fsynced before every answer: the
  guarantee of ``synchronous=FULL``) with group commit, the default;
* **per-request**: the same with ``server.commit_max_batch: 1`` (one transaction, one
  fsync, per callback): what group commit saves.

The load comes from wrk (Debian's ``wrk``, with ``bench/callbacks.lua``) when it is
installed, else from the provider simulator. wrk is the better instrument: it spends
a small fraction of the CPU per request that the simulator (aiohttp, Python) does, and on
a two-core machine the simulator caps the bare app at about its own speed, which
flatters every ratio. Install it with ``apt-get install wrk``; ``make test`` never needs
it. The Lua script stops sending after ``--seconds`` and waits for every answer, so the
count of acknowledgements is exact.

Afterwards the ledger must hold exactly the acknowledged callbacks (stored == acks), and
the grouped phase must reach ``--goal`` of the bare app's rate with p99 under
``--p99-ms``; the script exits 2 on a wrong count and 1 on a missed goal.

    .venv/bin/python bench/callbacks.py                       # 64 concurrent, 10 s each
    .venv/bin/python bench/callbacks.py --seconds 5 --driver simulator --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import aiohttp
import yaml
from revision import commit_id

from pesabridge.devtools.simulator import Report, Simulator
from pesabridge.store import Store

LUA = Path(__file__).with_name("callbacks.lua")

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


async def drive_simulator(url: str, seconds: float, concurrency: int) -> dict[str, Any]:
    simulator = Simulator("daraja", f"{url}/c2b/confirmation")
    report: Report = await simulator.run(duration=seconds, concurrency=concurrency)
    return {
        "acknowledged": report.acknowledged,
        "per_second": report.rate,
        "p50_ms": report.percentile(50) * 1000,
        "p99_ms": report.percentile(99) * 1000,
        "errors": report.errors + sum(report.refused.values()),
    }


async def drive_wrk(url: str, seconds: float, concurrency: int, prefix: str) -> dict[str, Any]:
    command = [
        "wrk",
        "-t1",
        f"-c{concurrency}",
        f"-d{int(seconds) + 3}s",  # the script stops sending at --seconds and drains
        "--timeout",
        "10s",
        "-s",
        str(LUA),
        f"{url}/c2b/confirmation",
        "--",
        str(seconds),
        prefix,
    ]
    proc = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    text = out.decode(errors="replace")
    line = next((x for x in text.splitlines() if x.startswith("PESABRIDGE-BENCH ")), None)
    if proc.returncode != 0 or line is None:
        raise SystemExit(f"wrk failed ({proc.returncode}):\n{text}")
    counts = json.loads(line.split(" ", 1)[1])
    return {
        "acknowledged": counts["acked"],
        "per_second": counts["acked"] / counts["seconds"] if counts["seconds"] else 0.0,
        "p50_ms": counts["p50_ms"],
        "p99_ms": counts["p99_ms"],
        "errors": counts["refused"]
        + counts["other"]
        + counts["socket_errors"]
        + counts["sent"]
        - counts["answered"],
    }


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (all its threads), from /proc; None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        cpu_before = cpu_seconds(proc.pid)
        if args.driver == "wrk":
            prefix = f"{name[:1].upper()}{os.getpid() % 1000:03d}"
            measured = await drive_wrk(url, args.seconds, args.concurrency, prefix)
        else:
            measured = await drive_simulator(url, args.seconds, args.concurrency)
        cpu_after = cpu_seconds(proc.pid)
        if cpu_before is not None and cpu_after is not None and measured["acknowledged"]:
            measured["cpu_us_per_ack"] = (cpu_after - cpu_before) / measured["acknowledged"] * 1e6
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    result: dict[str, Any] = {
        "phase": name,
        **measured,
        "per_second": round(measured["per_second"], 1),
        "p50_ms": round(measured["p50_ms"], 2),
        "p99_ms": round(measured["p99_ms"], 2),
    }
    if database is not None:
        store = Store.open(database)
        try:
            stored = store.status()["transactions"]
        finally:
            store.close()
        result["stored"] = stored
        result["correct"] = stored == result["acknowledged"] and result["errors"] == 0
    return result


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--driver",
        choices=("wrk", "simulator"),
        default="wrk" if shutil.which("wrk") else "simulator",
        help="the load generator (default: wrk when installed)",
    )
    parser.add_argument("--goal", type=float, default=0.8, help="grouped / bare, at least")
    parser.add_argument("--p99-ms", type=float, default=25.0, help="grouped p99, below")
    parser.add_argument(
        "--phases", default="bare,grouped,per-request", help="comma-separated, bare first"
    )
    args = parser.parse_args()
    base = args.workdir or Path(__file__).parent / "out"
    base.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        for name in args.phases.split(","):
            results.append(await phase(name, args, Path(tmp)))
    bare = results[0]["per_second"] or 1.0
    print(
        f"{os.cpu_count()} CPUs, load by {args.driver}, concurrency {args.concurrency},"
        f" {args.seconds:g} s per phase, commit {commit_id()}"
    )
    print(
        f"{'phase':<12} {'acked':>8} {'per s':>9} {'x bare':>7} {'p50 ms':>8} {'p99 ms':>8}"
        f" {'CPU us/ack':>10} {'x bare':>7}"
    )
    bare_cpu = results[0].get("cpu_us_per_ack")
    for r in results:
        ratio = r["per_second"] / bare
        cpu = r.get("cpu_us_per_ack")
        cpu_ratio = bare_cpu / cpu if cpu and bare_cpu else 0.0
        print(
            f"{r['phase']:<12} {r['acknowledged']:>8} {r['per_second']:>9.1f} {ratio:>7.2f}"
            f" {r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {cpu or 0:>10.0f} {cpu_ratio:>7.2f}"
            + ("" if "stored" not in r else f"  stored {r['stored']} correct {r['correct']}")
        )
    if args.json:
        print(json.dumps(results))
    if not all(r.get("correct", True) for r in results):
        print("MISS: the ledger does not hold exactly the acknowledged callbacks")
        return 2
    grouped = next((r for r in results if r["phase"] == "grouped"), None)
    if grouped is None:
        return 0
    ratio = grouped["per_second"] / bare
    verdict = ratio >= args.goal and grouped["p99_ms"] < args.p99_ms
    print(
        f"goal: grouped >= {args.goal:g} x bare with p99 < {args.p99_ms:g} ms:"
        f" {ratio:.2f} x, p99 {grouped['p99_ms']:.1f} ms -> {'MET' if verdict else 'MISSED'}"
    )
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
