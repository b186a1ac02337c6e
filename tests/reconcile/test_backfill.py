"""Lost callbacks are backfilled from the statement and delivered to the real back
office exactly once: however often reconciliation runs, whichever routes the statement
took, and when the lost callback turns up late after all."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from pesabridge.devtools.backoffice import BackOffice
from pesabridge.devtools.reconcile_days import callback_body
from pesabridge.reconcile import exceptions_for_transaction, run_reconciliation
from pesabridge.store import Store
from pesabridge.store.schema import deliveries, transactions

from .scenario import ACCOUNT, DAY, build_day, config, drain, receive_callbacks


def _posted(backoffice: BackOffice) -> Counter[str]:
    return Counter(p["body"]["receipt"] for p in backoffice.state.postings.values())


async def test_lost_callbacks_are_backfilled_and_delivered_once(
    store: Store, tmp_path: Path, backoffice: BackOffice
) -> None:
    cfg = config(backoffice.url)  # statements are not routed: only callbacks go to erp
    day, statement, _file = build_day(store, tmp_path, cfg=cfg)
    lost = day.anomalies.lost_callbacks
    await drain(store, cfg)
    assert not (set(lost) & set(_posted(backoffice)))  # nothing told us about them

    report = run_reconciliation(store, ACCOUNT, DAY, DAY, statement=statement, config=cfg)
    assert report.backfilled_deliveries == len(lost)
    again = run_reconciliation(store, ACCOUNT, DAY, DAY, statement=statement, config=cfg)
    assert again.backfilled_deliveries == 0  # the outbox row exists already
    await drain(store, cfg)

    posted = _posted(backoffice)
    assert all(posted[r] == 1 for r in lost)
    # every payment that happened and the statement lists: posted once, and only those
    listed = {p.receipt for p in day.payments} - set(day.anomalies.missing_statement_rows)
    assert {r for r in listed if posted[r] != 1} == set()
    assert max(posted.values()) == 1
    assert backoffice.state.replays == 0

    # the lost callback arrives after all: more evidence, no second delivery
    late = next(p for p in day.payments if p.receipt == lost[0])
    receive_callbacks(store, [json.dumps(callback_body(late, ACCOUNT)).encode()], cfg)
    run_reconciliation(store, ACCOUNT, DAY, DAY, config=cfg)
    await drain(store, cfg)
    assert _posted(backoffice)[lost[0]] == 1
    with store.read() as conn:
        txn_id = conn.execute(
            select(transactions.c.id).where(
                transactions.c.receipt == lost[0], transactions.c.entry == "payment"
            )
        ).scalar_one()
        count = conn.execute(
            select(func.count())
            .select_from(deliveries)
            .where(deliveries.c.transaction_id == txn_id)
        ).scalar_one()
    assert count == 1
    (record,) = exceptions_for_transaction(store, txn_id)
    assert (record.kind, record.status) == ("backfilled", "repaired")


async def test_statement_routes_and_backfill_never_double(
    store: Store, tmp_path: Path, backoffice: BackOffice
) -> None:
    """When the statement source is routed to the same sink, its rows already have their
    outbox row; backfilling adds none and the back office still gets each once."""
    cfg = config(backoffice.url, statements_routed=True)
    day, statement, _file = build_day(store, tmp_path, cfg=cfg)
    report = run_reconciliation(store, ACCOUNT, DAY, DAY, statement=statement, config=cfg)
    assert sorted(e.receipt for e in report.repaired) == sorted(day.anomalies.lost_callbacks)
    assert report.backfilled_deliveries == 0
    await drain(store, cfg)
    posted = _posted(backoffice)
    assert max(posted.values()) == 1
    assert all(posted[r] == 1 for r in day.anomalies.lost_callbacks)
    assert backoffice.state.replays == 0
