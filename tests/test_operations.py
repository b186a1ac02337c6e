"""Operations on the outbox: reversals wait for their originals, paused sinks are not
claimed, a delivery is explained attempt by attempt, replay by filter, route filters."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

from pesabridge.config import parse_config
from pesabridge.model import Direction, Entry
from pesabridge.routing import Routing
from pesabridge.store import AttemptRecord, Sighting, Store, utcnow

from .helpers import observed, payment, txn

LEASE = timedelta(seconds=60)


def _record(store: Store, *transactions: object, sinks: tuple[str, ...] = ("erp",)) -> None:
    store.record(
        [observed(t) for t in transactions],  # type: ignore[arg-type]
        Sighting("callback", "callback"),
        lambda _t: list(sinks),
    )


def _reversal(receipt: str, original: str) -> object:
    return txn(
        receipt,
        entry=Entry.REVERSAL,
        direction=Direction.DEBIT,
        related_receipt=original,
        account="600977",
        reference=None,
    )


def _done(store: Store, claimed: object, outcome: str = "delivered", **extra: object) -> None:
    now = utcnow()
    record = AttemptRecord("w", claimed.attempt, now, now, outcome, **extra)  # type: ignore[attr-defined, arg-type]
    store.finish(claimed, record, next_attempt_at=now)  # type: ignore[arg-type]


def test_a_reversal_waits_for_its_originals_delivery_to_the_same_sink(store: Store) -> None:
    # Recorded in the wrong order on purpose: the reversal first.
    _record(store, _reversal("SREV000001", "SORIG00001"), sinks=("erp", "audit"))
    _record(store, payment("SORIG00001"), sinks=("erp",))
    _record(store, _reversal("SREV000002", "SNOTKNOWN1"))  # original never seen: not held

    claimed = store.claim("w", limit=10, lease=LEASE)
    got = {(c.sink, c.transaction.receipt) for c in claimed}
    # erp's reversal waits; audit never had the original, so its reversal goes.
    assert got == {("erp", "SORIG00001"), ("audit", "SREV000001"), ("erp", "SREV000002")}
    original = next(c for c in claimed if c.transaction.receipt == "SORIG00001")
    reversal_id = next(v.id for v in store.deliveries(sink="erp", receipt="SREV000001"))
    detail = store.delivery(reversal_id)
    assert detail is not None
    assert detail.held

    _done(store, original, "retry")  # due again at once, but not delivered: still held
    (again,) = store.claim("w", limit=10, lease=LEASE)
    assert again.transaction.receipt == "SORIG00001"
    _done(store, again)
    (released,) = store.claim("w", limit=10, lease=LEASE)
    assert (released.sink, released.transaction.receipt) == ("erp", "SREV000001")


def test_reversal_released_once_the_original_is_delivered(store: Store) -> None:
    _record(store, payment("SORIG00002"), _reversal("SREV000003", "SORIG00002"))
    (first,) = store.claim("w", limit=10, lease=LEASE)
    assert first.transaction.receipt == "SORIG00002"
    _done(store, first)
    (second,) = store.claim("w", limit=10, lease=LEASE)
    assert second.transaction.receipt == "SREV000003"


def test_a_dead_original_holds_its_reversal_until_replayed(store: Store) -> None:
    _record(store, payment("SORIG00003"), _reversal("SREV000004", "SORIG00003"))
    (first,) = store.claim("w", limit=10, lease=LEASE)
    _done(store, first, "dead", error="HTTP 422")
    assert store.claim("w", limit=10, lease=LEASE) == []
    assert store.replay(dead=True, sink="erp", receipt="SORIG00003") == 1
    (again,) = store.claim("w", limit=10, lease=LEASE)
    assert again.transaction.receipt == "SORIG00003"


def test_a_paused_sink_is_not_claimed_until_resumed(store: Store) -> None:
    _record(store, payment("SPAUSE0001"), sinks=("erp", "audit"))
    store.pause_sink("erp", reason="ERP upgrade")
    assert [c.sink for c in store.claim("w", limit=10, lease=LEASE)] == ["audit"]
    assert store.claim("w", limit=10, lease=LEASE) == []
    states = store.sink_states()
    assert states["erp"].paused
    assert states["erp"].reason == "ERP upgrade"
    assert not states["audit"].paused
    store.resume_sink("erp")
    assert [c.sink for c in store.claim("w", limit=10, lease=LEASE)] == ["erp"]
    assert not store.sink_states()["erp"].paused


def test_show_explains_every_attempt(store: Store) -> None:
    _record(store, payment("SSHOW00001"))
    (claimed,) = store.claim("w", limit=1, lease=LEASE)
    _done(
        store,
        claimed,
        "retry",
        error="read timed out (outcome unknown)",
        unknown_outcome=True,
        request_summary="POST http://erp/x application/json 300 bytes sha256:ab",
    )
    store.replay(ids=[claimed.delivery_id])
    (claimed,) = store.claim("w", limit=1, lease=LEASE)
    _done(store, claimed, status_code=201, response='{"id": 7}', document_id="7")
    detail = store.delivery(claimed.delivery_id)
    assert detail is not None
    assert [a.outcome for a in detail.attempts] == ["retry", "delivered"]
    assert detail.attempts[0].unknown_outcome
    assert detail.attempts[0].request_summary is not None
    assert not detail.attempts[1].unknown_outcome
    assert detail.view.document_id == "7"
    assert store.delivery(999_999) is None
    since = utcnow() - timedelta(minutes=1)
    assert len(store.deliveries(sink="erp", since=since)) == 1
    assert store.deliveries(since=utcnow() + timedelta(minutes=1)) == []


def test_route_filters() -> None:
    config = parse_config(
        {
            "sources": [{"name": "cb", "type": "daraja-c2b"}],
            "sinks": [
                {"name": "big", "type": "http", "url": "http://127.0.0.1/x"},
                {"name": "inv", "type": "http", "url": "http://127.0.0.1/y"},
            ],
            "routes": [
                {"from": ["cb"], "to": ["big"], "amount_min": "1000", "directions": ["credit"]},
                {"from": ["cb"], "to": ["inv"], "reference": "^INV-\\d+$", "amount_max": 5000},
            ],
        },
        environ={},
    )
    route = Routing(config.routes).router_for("cb")
    assert route(payment("SR1", "1500.00", reference="INV-9")) == ["big", "inv"]
    assert route(payment("SR2", "50.00", reference="INV-9")) == ["inv"]
    assert route(payment("SR3", "50.00", reference="ORDER-9")) == []
    assert route(payment("SR4", "9000.00", reference=None)) == ["big"]
    debit = txn("SR5", direction=Direction.DEBIT, amount=Decimal("2000.00"), reference="INV-1")
    assert route(debit) == ["inv"]


def test_cli_pause_list_show_replay(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = Store.open(url)
    try:
        _record(store, payment("SCLI000001"))
        (claimed,) = store.claim("w", limit=1, lease=LEASE)
        _done(store, claimed, "dead", status_code=422, error="HTTP 422: refused", response="no")
    finally:
        store.close()

    def run(*args: str) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "pesabridge", *args, "--db", url],
            capture_output=True,
            text=True,
            env={**os.environ, "COLUMNS": "200"},
            check=False,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "erp paused" in run("sinks", "pause", "erp", "--reason", "upgrade")
    assert "upgrade" in run("sinks", "list")
    shown = run("deliveries", "show", str(claimed.delivery_id))
    assert "HTTP 422" in shown
    assert "pesabridge replay" in shown
    assert "SCLI000001" in run("deliveries", "--sink", "erp", "--state", "dead", "--since", "1h")
    assert "1 deliveries queued again" in run("replay", "--dead", "--sink", "erp")
    assert "sinks resume erp" in run("deliveries", "show", str(claimed.delivery_id))
    assert "erp resumed" in run("sinks", "resume", "erp")
