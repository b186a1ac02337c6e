"""``pesabridge demo``: the whole path in one process, against a sample back office.

It writes a sample M-Pesa statement into a drop folder, serves the Daraja C2B endpoint,
sends a few simulated confirmations (one repeated, one for a payment the statement also
lists), delivers everything to a sample back-office API and shows what happened.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp

from .config import parse_config
from .devtools.backoffice import BackOffice
from .devtools.statements import payments, write_statement
from .runtime import Runtime

STATEMENT_PAYMENTS = 12
SHORT_CODE = "600977"


@dataclass
class DemoResult:
    """What the demo observed at the end."""

    transactions: int
    deliveries: dict[str, int]
    postings: int
    replays: int
    callbacks_sent: int
    callback_answers: list[dict[str, Any]]

    @property
    def all_delivered(self) -> bool:
        pending = sum(v for k, v in self.deliveries.items() if k != "delivered")
        return pending == 0 and self.deliveries.get("delivered", 0) == self.postings > 0


def demo_config(workdir: Path, port: int, backoffice_url: str) -> dict[str, Any]:
    """The configuration the demo runs with (also written to ``workdir/pesabridge.yaml``)."""
    return {
        "database": f"sqlite:///{workdir / 'pesabridge.db'}",
        "server": {"host": "127.0.0.1", "port": port},
        "worker": {"poll_interval": 0.2},
        "sources": [
            {
                "name": "statements",
                "type": "folder",
                "path": str(workdir / "inbox"),
                "poll_interval": 0.5,
                "stable_for": 1.0,
            },
            {"name": "daraja", "type": "daraja-c2b", "path": "/daraja/c2b"},
        ],
        "sinks": [
            {"name": "erp", "type": "http", "url": backoffice_url, "backoff_base": 0.5},
        ],
        "routes": [{"from": ["statements", "daraja"], "to": ["erp"], "entries": ["payment"]}],
    }


def _confirmations() -> list[dict[str, str]]:
    """Daraja C2B confirmations: two new payments, one sent twice, one also in the statement."""
    newest = next(payments(1, end=_statement_end(), seed=11))
    base = {
        "TransactionType": "Pay Bill",
        "BusinessShortCode": SHORT_CODE,
        "InvoiceNumber": "",
        "OrgAccountBalance": "",
        "ThirdPartyTransID": "",
        "MiddleName": "",
        "LastName": "",
    }
    first = {
        **base,
        "TransID": "SGDEMO0001",
        "TransTime": "20240506200101",
        "TransAmount": "1500.00",
        "BillRefNumber": "INV-00107",
        "MSISDN": "254712345678",
        "FirstName": "AMINA",
    }
    second = {
        **base,
        "TransID": "SGDEMO0002",
        "TransTime": "20240506200502",
        "TransAmount": "250",
        "BillRefNumber": "acc 0042",
        "MSISDN": "2547 ***** 126",
        "FirstName": "BRIAN",
    }
    in_statement = {
        **base,
        "TransID": newest.receipt,
        "TransTime": newest.when.strftime("%Y%m%d%H%M%S"),
        "TransAmount": str(newest.amount),
        "BillRefNumber": newest.reference,
        "MSISDN": newest.msisdn,
        "FirstName": newest.name.split()[0],
    }
    return [first, second, first, in_statement]


def _statement_end() -> datetime:
    return datetime(2024, 5, 6, 19, 0, 0)


async def run_demo(
    workdir: Path,
    *,
    port: int = 8080,
    once: bool = False,
    timeout: float = 60.0,
    report: Callable[[DemoResult], None] | None = None,
) -> DemoResult:
    """Run the demo from a clean ``workdir``.

    When everything is delivered (or ``timeout`` passes) the result goes to ``report``;
    with ``once`` the demo then stops, otherwise it keeps serving until cancelled.
    """
    for leftover in [*workdir.glob("pesabridge.db*"), workdir / "inbox"]:
        if leftover.is_dir():
            shutil.rmtree(leftover)
        elif leftover.exists():
            leftover.unlink()
    (workdir / "inbox").mkdir(parents=True)
    backoffice = BackOffice()
    await backoffice.start()
    document = demo_config(workdir, port, backoffice.url)
    (workdir / "pesabridge.yaml").write_text(json.dumps(document, indent=2))
    config = parse_config(document, base_dir=workdir)
    runtime = Runtime(config)
    stop = asyncio.Event()
    task = asyncio.create_task(runtime.run(stop))
    try:
        await runtime.started.wait()
        write_statement(
            workdir / "inbox" / f"ORG_{SHORT_CODE}_Utility Account_Completed_demo.csv",
            STATEMENT_PAYMENTS,
            end=_statement_end(),
            seed=11,
            short_code=SHORT_CODE,
        )
        answers = []
        async with aiohttp.ClientSession() as client:
            for body in _confirmations():
                async with client.post(
                    f"http://127.0.0.1:{runtime.port}/daraja/c2b/confirmation", json=body
                ) as response:
                    answers.append(await response.json())
        result = await _wait_delivered(runtime, backoffice, answers, timeout)
        if report is not None:
            report(result)
        if not once:
            await stop.wait()
        return result
    finally:
        stop.set()
        await task
        await backoffice.stop()
        runtime.store.close()


async def _wait_delivered(
    runtime: Runtime, backoffice: BackOffice, answers: list[dict[str, Any]], timeout: float
) -> DemoResult:
    deadline = asyncio.get_running_loop().time() + timeout
    expected = STATEMENT_PAYMENTS + 2  # the statement's payments and two callback-only ones
    while True:
        counts = await asyncio.to_thread(runtime.store.status)
        per_state = counts["deliveries"].get("erp", {})
        result = DemoResult(
            transactions=counts["transactions"],
            deliveries=per_state,
            postings=len(backoffice.state.postings),
            replays=backoffice.state.replays,
            callbacks_sent=len(answers),
            callback_answers=answers,
        )
        done = per_state.get("delivered", 0) >= expected and result.all_delivered
        if done or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.2)


def describe(result: DemoResult) -> list[tuple[str, str]]:
    """Rows for the summary table."""
    return [
        ("transactions in the ledger", str(result.transactions)),
        ("callbacks sent (one repeated)", str(result.callbacks_sent)),
        ("deliveries", ", ".join(f"{k}: {v}" for k, v in sorted(result.deliveries.items()))),
        ("back-office postings", str(result.postings)),
        ("repeats the back office absorbed", str(result.replays)),
        ("everything delivered exactly once", "yes" if result.all_delivered else "NO"),
    ]
