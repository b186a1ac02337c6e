"""A provider simulator: realistic callbacks, each with a fresh receipt, at a chosen rate.

For local development (point it at ``pesabridge serve``) and for load tests
(``bench/callbacks.py``). Bodies follow the reference samples; K2 bodies are signed with
the given key, so a ``kopokopo`` source configured with the same key accepts them::

    sim = Simulator("daraja", "http://127.0.0.1:8080/daraja/c2b/confirmation")
    report = await sim.run(count=1000, rate=200, concurrency=64)
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import aiohttp

PROVIDERS = ("daraja", "stk", "kopokopo", "airtel", "mtn")
_EAT = timedelta(hours=3)


def _receipt(n: int) -> str:
    return f"SIM{secrets.token_hex(3).upper()}{n:07d}"


def _daraja(n: int) -> dict[str, object]:
    now = datetime.now(UTC) + _EAT
    return {
        "TransactionType": "Pay Bill",
        "TransID": _receipt(n),
        "TransTime": now.strftime("%Y%m%d%H%M%S"),
        "TransAmount": f"{100 + n % 900}.00",
        "BusinessShortCode": "600977",
        "BillRefNumber": f"INV-{n:05d}",
        "InvoiceNumber": "",
        "OrgAccountBalance": "",
        "ThirdPartyTransID": "",
        "MSISDN": "2547 ***** 126",
        "FirstName": "SIM",
    }


def _stk(n: int) -> dict[str, object]:
    now = datetime.now(UTC) + _EAT
    return {
        "Body": {
            "stkCallback": {
                "MerchantRequestID": f"sim-{n}",
                "CheckoutRequestID": f"ws_CO_SIM{n:010d}",
                "ResultCode": 0,
                "ResultDesc": "The service request is processed successfully.",
                "CallbackMetadata": {
                    "Item": [
                        {"Name": "Amount", "Value": 1 + n % 500},
                        {"Name": "MpesaReceiptNumber", "Value": _receipt(n)},
                        {"Name": "TransactionDate", "Value": int(now.strftime("%Y%m%d%H%M%S"))},
                        {"Name": "PhoneNumber", "Value": 254708374149},
                    ]
                },
            }
        }
    }


def _kopokopo(n: int) -> dict[str, object]:
    now = datetime.now(UTC).astimezone(UTC) + _EAT
    stamp = now.strftime("%Y-%m-%dT%H:%M:%S+03:00")
    return {
        "topic": "buygoods_transaction_received",
        "id": f"sim-{n}",
        "created_at": stamp,
        "event": {
            "type": "Buygoods Transaction",
            "resource": {
                "id": f"sim-res-{n}",
                "amount": f"{100 + n % 900}.0",
                "status": "Received",
                "system": "Lipa Na M-PESA",
                "currency": "KES",
                "reference": _receipt(n),
                "till_number": "512345",
                "sender_phone_number": "+254722000555",
                "hashed_sender_phone": "",
                "origination_time": stamp,
                "sender_last_name": "Sim",
                "sender_first_name": "Load",
                "sender_middle_name": None,
            },
        },
        "_links": {"self": "https://sandbox.kopokopo.com/", "resource": "https://sandbox/"},
    }


def _airtel(n: int) -> dict[str, object]:
    receipt = f"MP{n:06d}.{secrets.randbelow(10000):04d}.SIM"
    return {
        "transaction": {
            "id": f"SIM{n:06d}",
            "message": f"Paid UGX {1000 + n:,} to SIM LIMITED Charge UGX 140, Trans ID {receipt}.",
            "status_code": "TS",
            "airtel_money_id": receipt,
        }
    }


def _mtn(n: int) -> dict[str, object]:
    return {
        "financialTransactionId": str(10_000_000 + n + secrets.randbelow(10**9) * 10**7),
        "externalId": f"SIM{n}",
        "amount": str(100 + n % 900),
        "currency": "UGX",
        "payer": {"partyIdType": "MSISDN", "partyId": "4656473839"},
        "payerMessage": "sim",
        "payeeNote": "sim",
        "status": "SUCCESSFUL",
    }


BUILDERS: dict[str, Callable[[int], dict[str, object]]] = {
    "daraja": _daraja,
    "stk": _stk,
    "kopokopo": _kopokopo,
    "airtel": _airtel,
    "mtn": _mtn,
}


def body_for(provider: str, n: int, key: str | None = None) -> tuple[bytes, dict[str, str]]:
    """The ``n``-th callback body of ``provider`` and its headers (K2: signed with key)."""
    body = json.dumps(BUILDERS[provider](n)).encode()
    headers = {"Content-Type": "application/json"}
    if provider == "kopokopo" and key:
        headers["X-KopoKopo-Signature"] = hmac.new(key.encode(), body, hashlib.sha256).hexdigest()
    return body, headers


@dataclass
class Report:
    """What a run did."""

    sent: int = 0
    acknowledged: int = 0
    refused: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    latencies: list[float] = field(default_factory=list)
    elapsed: float = 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies:
            return 0.0
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    @property
    def rate(self) -> float:
        return self.acknowledged / self.elapsed if self.elapsed else 0.0

    def summary(self) -> str:
        return (
            f"sent {self.sent}, acknowledged {self.acknowledged}, refused {self.refused or 0},"
            f" errors {self.errors} in {self.elapsed:.2f} s ({self.rate:.0f}/s);"
            f" latency p50 {self.percentile(50) * 1000:.1f} ms,"
            f" p99 {self.percentile(99) * 1000:.1f} ms"
        )


class Simulator:
    """Posts ``provider`` callbacks to ``url``."""

    def __init__(self, provider: str, url: str, *, key: str | None = None) -> None:
        if provider not in BUILDERS:
            raise ValueError(f"unknown provider {provider!r}; known: {', '.join(BUILDERS)}")
        self.provider = provider
        self.url = url
        self.key = key

    async def run(
        self,
        *,
        count: int | None = None,
        rate: float | None = None,
        concurrency: int = 64,
        duration: float | None = None,
    ) -> Report:
        """Send ``count`` callbacks (or for ``duration`` seconds) at most ``rate`` per second."""
        report = Report()
        numbers = itertools.count() if count is None else iter(range(count))
        started = time.monotonic()
        interval = 1.0 / rate if rate else 0.0
        lock = asyncio.Lock()
        next_slot = [started]

        async def pace() -> bool:
            now = time.monotonic()
            if duration is not None and now - started >= duration:
                return False
            if interval:
                async with lock:
                    slot = max(next_slot[0], now)
                    next_slot[0] = slot + interval
                await asyncio.sleep(max(0.0, slot - now))
            return True

        connector = aiohttp.TCPConnector(limit=concurrency)
        timeout = aiohttp.ClientTimeout(total=30)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as client:

            async def worker() -> None:
                for n in numbers:
                    if not await pace():
                        return
                    body, headers = body_for(self.provider, n, self.key)
                    sent_at = time.monotonic()
                    report.sent += 1
                    try:
                        async with client.post(self.url, data=body, headers=headers) as reply:
                            await reply.read()
                            status = reply.status
                    except (aiohttp.ClientError, TimeoutError):
                        report.errors += 1
                        continue
                    report.latencies.append(time.monotonic() - sent_at)
                    if 200 <= status < 300:
                        report.acknowledged += 1
                    else:
                        report.refused[status] = report.refused.get(status, 0) + 1

            await asyncio.gather(*(worker() for _ in range(concurrency)))
        report.elapsed = time.monotonic() - started
        return report
