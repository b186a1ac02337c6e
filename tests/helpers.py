"""Small builders and process helpers shared by tests (not fixtures: plain functions)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from pesabridge.formats.base import Observation
from pesabridge.model import EAT, Counterparty, Direction, Entry, Transaction

BASE_TIME = datetime(2024, 5, 6, 9, 0, tzinfo=UTC)


def txn(receipt: str = "SLK4H7R2PQ", **changes: Any) -> Transaction:
    """A completed paybill payment; any field can be overridden by keyword."""
    fields: dict[str, Any] = {
        "provider": "mpesa",
        "account": "600100",
        "receipt": receipt,
        "entry": Entry.PAYMENT,
        "direction": Direction.CREDIT,
        "amount": Decimal("1500.00"),
        "currency": "KES",
        "occurred_at": datetime(2024, 5, 6, 21, 5, 59, tzinfo=EAT),
        "counterparty": Counterparty(msisdn="254712345678", name="JANE WANJIKU"),
        "reference": "INV-1001",
    }
    fields.update(changes)
    return Transaction(**fields)


def payment(
    receipt: str,
    amount: str = "100.00",
    *,
    reference: str | None = "INV-1",
    account: str = "600977",
    minutes: int = 0,
) -> Transaction:
    """A completed M-Pesa paybill payment."""
    return Transaction(
        provider="mpesa",
        account=account,
        receipt=receipt,
        entry="payment",  # type: ignore[arg-type]
        direction="credit",  # type: ignore[arg-type]
        amount=Decimal(amount),
        currency="KES",
        occurred_at=BASE_TIME + timedelta(minutes=minutes),
        counterparty=Counterparty.of("254712345678", "JANE DOE"),
        reference=reference,
    )


def observed(txn: Transaction, source: str = "test", line: int | None = None) -> Observation:
    """An observation of ``txn`` as a callback body would carry it."""
    return Observation(txn, source, line, repr(txn.to_dict()).encode())


def start_pesabridge(*args: str, log: Path) -> subprocess.Popen[bytes]:
    """``pesabridge ARGS`` as a real process, its output appended to ``log``."""
    return subprocess.Popen(
        [sys.executable, "-m", "pesabridge", *args],
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def start_worker(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """``pesabridge worker -c CONFIG`` as a real process."""
    return start_pesabridge("worker", "-c", str(config), log=log)


def wait_for(condition: Callable[[], object], seconds: float, what: str) -> None:
    """Poll ``condition`` until it is truthy; fail naming ``what`` after ``seconds``.

    A condition that raises OSError (a server not listening yet) counts as not yet.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"timed out after {seconds}s waiting for {what}")


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])
