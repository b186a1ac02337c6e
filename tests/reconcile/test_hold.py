"""``hold_above``: large callbacks wait for the statement. Held ones are recorded and
acknowledged but not delivered; once a statement lists them, reconciliation routes them
and the real back office gets each exactly once; a forged one is never delivered."""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path

from pesabridge.config import Config, parse_config
from pesabridge.devtools.backoffice import BackOffice
from pesabridge.devtools.reconcile_days import callback_body, generate_day
from pesabridge.formats.base import Observation
from pesabridge.formats.daraja_c2b import parse_c2b_payload
from pesabridge.reconcile import run_reconciliation
from pesabridge.reconcile.hold import HoldingRouting, routing_for
from pesabridge.store import Sighting, Store

from .scenario import ACCOUNT, DAY, drain, ingest_statement

HOLD = Decimal("10000.00")


def _config(url: str) -> Config:
    return parse_config(
        {
            "sources": [
                {"name": "daraja", "type": "daraja-c2b", "path": "/daraja/c2b"},
                {"name": "statements", "type": "folder", "path": "inbox"},
            ],
            "sinks": [{"name": "erp", "type": "http", "url": url}],
            "routes": [{"from": ["daraja"], "to": ["erp"], "entries": ["payment"]}],
            "reconciliation": {"accounts": [{"account": ACCOUNT, "hold_above": str(HOLD)}]},
        },
        environ={},
    )


def _callbacks(store: Store, cfg: Config, bodies: list[bytes]) -> None:
    route = routing_for(cfg).router_for("daraja")  # as the running system routes them
    for number, body in enumerate(bodies):
        item = parse_c2b_payload(body, f"req-{number}")
        assert isinstance(item, Observation)
        store.record([item], Sighting("callback", "callback"), route)


def _posted(backoffice: BackOffice) -> Counter[str]:
    return Counter(p["body"]["receipt"] for p in backoffice.state.postings.values())


async def test_large_callbacks_wait_for_the_statement(
    store: Store, tmp_path: Path, backoffice: BackOffice
) -> None:
    cfg = _config(backoffice.url)
    assert isinstance(routing_for(cfg), HoldingRouting)
    day = generate_day(DAY, 30, anomalies=False, seed=9)
    large = {p.receipt for p in day.payments if p.amount >= HOLD}
    small = {p.receipt for p in day.payments} - large
    assert large
    assert small
    forged = callback_body(day.payments[0], ACCOUNT) | {
        "TransID": "SKFORGED99",
        "TransAmount": "50000.00",
    }
    _callbacks(store, cfg, [*day.callbacks, json.dumps(forged).encode()])
    await drain(store, cfg)
    assert set(_posted(backoffice)) == small  # the large ones are held

    ingest_statement(store, day.write_statement(tmp_path / "s.csv"))
    report = run_reconciliation(store, ACCOUNT, DAY, DAY, config=cfg)
    assert report.released_deliveries == len(large)
    (unconfirmed,) = report.exceptions
    assert unconfirmed.receipt == "SKFORGED99"
    assert "held" in unconfirmed.detail
    (summary,) = report.days
    assert summary.count("held") == 1  # the forged one, still held
    again = run_reconciliation(store, ACCOUNT, DAY, DAY, config=cfg)
    assert again.released_deliveries == 0
    await drain(store, cfg)

    posted = _posted(backoffice)
    assert set(posted) == small | large
    assert max(posted.values()) == 1
    assert "SKFORGED99" not in posted


def test_without_hold_above_routing_is_plain(tmp_path: Path) -> None:
    cfg = parse_config(
        {
            "sources": [{"name": "daraja", "type": "daraja-c2b", "path": "/c2b"}],
            "sinks": [{"name": "erp", "type": "http", "url": "http://127.0.0.1:9/x"}],
            "routes": [{"from": ["daraja"], "to": ["erp"]}],
        },
        environ={},
    )
    assert not isinstance(routing_for(cfg), HoldingRouting)
