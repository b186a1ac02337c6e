"""Ledger contents for the dashboard tests, recorded through the store as sources do."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

from pesabridge.dashboard.users import add_user
from pesabridge.formats.base import Observation
from pesabridge.model import Counterparty
from pesabridge.store import AttemptRecord, Sighting, Store, utcnow
from tests.helpers import txn

PASSWORDS = {"admin": "admin-password-1", "olive": "operator-pass-1", "victor": "viewer-pass-1"}


def users(store: Store) -> None:
    """An admin, an operator and a viewer (passwords in :data:`PASSWORDS`)."""
    add_user(store, "admin", PASSWORDS["admin"], "admin")
    add_user(store, "olive", PASSWORDS["olive"], "operator")
    add_user(store, "victor", PASSWORDS["victor"], "viewer")


def payments(store: Store, sink: str = "erp") -> None:
    """Three payments from three payers, each routed to ``sink``; recent, so the
    Overview shows them."""
    now = utcnow()
    rows = [
        ("SLK1000001", "254712345678", "JANE WANJIKU", "INV-1001", "1500.00", 1),
        ("SLK1000002", "254722000111", "JOHN OTIENO", "inv-2002", "250.50", 2),
        ("SLK1000003", "254733999888", '=HYPERLINK("http://x")', "INV-3003", "99.00", 3),
    ]
    observations = []
    for receipt, msisdn, name, reference, amount, hours in rows:
        t = txn(
            receipt,
            amount=Decimal(amount),
            occurred_at=now - timedelta(hours=hours),
            counterparty=Counterparty(msisdn=msisdn, name=name),
            reference=reference,
        )
        body = {
            "TransID": receipt,
            "MSISDN": msisdn,
            "TransAmount": amount,
            "BillRefNumber": reference,
            "SecurityCredential": "s3cr3t-credential",
        }
        observations.append(Observation(t, f"req-{receipt}", None, json.dumps(body).encode()))
    store.record(observations, Sighting("callback", "callback"), lambda _t: [sink])


def kill(store: Store, receipt: str, *, status: int = 422, error: str = "unknown account") -> int:
    """Dead-letter ``receipt``'s delivery the way a worker would; returns its id. The other
    deliveries claimed on the way go back due at once, as after a retry."""
    found = None
    for claimed in store.claim("test-worker", limit=100):
        now = utcnow()
        if claimed.transaction.receipt == receipt:
            record = AttemptRecord(
                "test-worker", claimed.attempt, now, now, "dead", status, error, '{"error": 1}'
            )
            store.finish(claimed, record)
            found = claimed.delivery_id
        else:
            retry = AttemptRecord("test-worker", claimed.attempt, now, now, "retry", 503, "busy")
            store.finish(claimed, retry, next_attempt_at=now)
    if found is None:
        raise AssertionError(f"{receipt} was not claimable")
    return found
