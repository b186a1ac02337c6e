"""A statement dropped in a folder source is reconciled as soon as it is ingested, with
the file itself at hand (every running balance checked), through the running system's
wiring (``Runtime``); turning ``reconciliation.auto`` off turns it off."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from pesabridge.config import parse_config
from pesabridge.devtools.reconcile_days import generate_day
from pesabridge.reconcile import list_exceptions
from pesabridge.runtime import Runtime
from pesabridge.store import Store
from pesabridge.store.schema import recon_runs

from .scenario import ACCOUNT, DAY, receive_callbacks


def _runtime(store: Store, inbox: Path, *, auto: bool) -> Runtime:
    config = parse_config(
        {
            "sources": [
                {"name": "daraja", "type": "daraja-c2b", "path": "/daraja/c2b"},
                {"name": "inbox", "type": "folder", "path": str(inbox), "stable_for": 0},
            ],
            "sinks": [{"name": "erp", "type": "http", "url": "http://127.0.0.1:9/x"}],
            "routes": [{"from": ["daraja"], "to": ["erp"], "entries": ["payment"]}],
            "reconciliation": {"auto": auto},
        },
        environ={},
    )
    return Runtime(config, store=store)


def test_a_dropped_statement_is_reconciled_once_ingested(store: Store, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    day = generate_day(DAY, 15)
    runtime = _runtime(store, inbox, auto=True)
    receive_callbacks(store, day.callbacks, runtime.config)
    day.write_statement(inbox / "ORG_600977_statement.csv")
    (poller,) = runtime.pollers
    (summary,) = poller.poll_once(now=100.0)  # type: ignore[attr-defined]
    assert summary.new > 0
    with store.read() as conn:
        (run,) = conn.execute(select(recon_runs)).all()
    assert (run.trigger, run.account) == ("auto", ACCOUNT)
    open_now = {(e.kind, e.receipt) for e in list_exceptions(store, account=ACCOUNT)}
    # the misprinted balance sits on a row whose callback came first without a balance:
    # found only because the file itself was read
    assert ("balance_break", day.anomalies.broken_balances[0]) in open_now
    assert ("unconfirmed", day.anomalies.forged_callbacks[0]) in open_now
    backfilled = list_exceptions(store, account=ACCOUNT, status="repaired")
    assert sorted(e.receipt for e in backfilled) == sorted(day.anomalies.lost_callbacks)
    # routed by the callback source's route, since the folder has none
    assert {v.transaction.receipt for v in store.deliveries(limit=500)} >= set(
        day.anomalies.lost_callbacks
    )


def test_auto_off_leaves_it_to_the_command(store: Store, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    day = generate_day(DAY, 10, anomalies=False)
    runtime = _runtime(store, inbox, auto=False)
    day.write_statement(inbox / "ORG_600977_statement.csv")
    (poller,) = runtime.pollers
    (summary,) = poller.poll_once(now=100.0)  # type: ignore[attr-defined]
    assert summary.new == 20
    with store.read() as conn:
        assert conn.execute(select(recon_runs)).all() == []
