"""The back office's own record against what was delivered: a posting the back office
dropped is "not posted", one it has that we never sent is "unexpected"; read from a CSV
export through a column mapping, or fetched from an HTTP endpoint."""

from __future__ import annotations

from pathlib import Path

import pytest
from aiohttp import web

from pesabridge.devtools.backoffice import BackOffice
from pesabridge.devtools.reconcile_days import BACKOFFICE_COLUMNS, write_backoffice_export
from pesabridge.reconcile import ReconcileError, ReconciliationConfig, run_reconciliation
from pesabridge.store import Store

from .scenario import ACCOUNT, DAY, build_day, config, drain


def _settings(**backoffice: object) -> ReconciliationConfig:
    return ReconciliationConfig.model_validate(
        {"backoffice": {"sink": "erp", "columns": BACKOFFICE_COLUMNS, **backoffice}}
    )


async def _delivered_day(store: Store, tmp_path: Path, backoffice: BackOffice) -> list[str]:
    cfg = config(backoffice.url)
    _day, statement, _file = build_day(store, tmp_path, cfg=cfg, anomalies=False, count=25)
    run_reconciliation(store, ACCOUNT, DAY, DAY, statement=statement, config=cfg)
    await drain(store, cfg)
    return sorted(p["body"]["receipt"] for p in backoffice.state.postings.values())


async def test_a_dropped_posting_is_not_posted_and_an_extra_line_unexpected(
    store: Store, tmp_path: Path, backoffice: BackOffice
) -> None:
    receipts = await _delivered_day(store, tmp_path, backoffice)
    dropped = receipts[3]
    export = write_backoffice_export(
        tmp_path / "erp-export.csv",
        backoffice.state.postings.values(),
        drop=[dropped],
        extra=[
            {
                "Doc No": "MANUAL-7",
                "Amount": "1234.00",
                "Posted": "2024-05-06T10:00:00+03:00",
                "Narration": "keyed by hand",
            }
        ],
    )
    report = run_reconciliation(store, ACCOUNT, DAY, DAY, backoffice=export, config=_settings())
    kinds = sorted((e.kind, e.receipt or e.detail.split(" ")[3]) for e in report.exceptions)
    assert ("not_posted", dropped) in kinds
    assert len(kinds) == 2
    unexpected = next(e for e in report.exceptions if e.kind == "unexpected_posting")
    assert "MANUAL-7" in unexpected.detail
    assert "line 26" in unexpected.detail  # header + 24 kept lines, then the extra one
    (summary,) = report.days
    assert summary.count("posted") == len(receipts) - 1
    assert summary.count("not_posted") == 1


async def test_rules_match_an_export_without_receipts(
    store: Store, tmp_path: Path, backoffice: BackOffice
) -> None:
    """No receipt, no document id: amount, time and reference (folded) pair them."""
    receipts = await _delivered_day(store, tmp_path, backoffice)
    lines = ["Amount;When;Ref"]
    for posting in backoffice.state.postings.values():
        body = posting["body"]
        reference = f"  {body['reference'].lower().replace('-', '- ')} "  # case, spaces
        lines.append(f"{body['amount']};{body['occurred_at']};{reference.replace('- ', '-')}")
    export = tmp_path / "export.csv"
    export.write_text("\n".join(lines) + "\n")
    settings = ReconciliationConfig.model_validate(
        {"backoffice": {"sink": "erp", "delimiter": ";",
                        "columns": {"amount": "Amount", "time": "When", "reference": "Ref"}}}
    )  # fmt: skip
    report = run_reconciliation(store, ACCOUNT, DAY, DAY, backoffice=export, config=settings)
    assert report.clean, report.exceptions
    (summary,) = report.days
    assert summary.count("posted") == len(receipts)
    (rules,) = [m for m in report.matches if m.method == "back office: rule"]
    assert rules.pairs == len(receipts)
    assert 0.9 <= rules.confidence <= 1.0


async def test_the_record_is_fetched_from_an_http_endpoint(
    store: Store, tmp_path: Path, backoffice: BackOffice
) -> None:
    receipts = await _delivered_day(store, tmp_path, backoffice)
    kept = [p for p in backoffice.state.postings.values() if p["body"]["receipt"] != receipts[0]]
    items = [
        {"ref": p["body"]["receipt"], "amt": p["body"]["amount"], "doc": p["document"]}
        for p in kept
    ]

    async def listing(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != "Bearer s3cret":
            return web.json_response({"error": "unauthorized"}, status=401)
        return web.json_response({"data": items})

    app = web.Application()
    app.router.add_get("/postings", listing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        settings = _settings(
            url=f"http://127.0.0.1:{port}/postings",
            headers={"Authorization": "Bearer s3cret"},
            items="data",
            columns={"receipt": "ref", "amount": "amt", "document": "doc"},
        )
        # the fetch blocks; run it off the loop that serves the endpoint
        import asyncio

        report = await asyncio.to_thread(
            run_reconciliation, store, ACCOUNT, DAY, DAY, config=settings
        )
        (missing,) = report.exceptions
        assert (missing.kind, missing.receipt) == ("not_posted", receipts[0])

        wrong = _settings(url=f"http://127.0.0.1:{port}/postings", items="data")
        with pytest.raises(ReconcileError, match="401"):
            await asyncio.to_thread(run_reconciliation, store, ACCOUNT, DAY, DAY, config=wrong)
    finally:
        await runner.cleanup()


def test_bad_rows_are_named_and_the_rest_compared(store: Store, tmp_path: Path) -> None:
    build_day(store, tmp_path, anomalies=False, count=5)
    export = tmp_path / "export.csv"
    export.write_text(
        "Doc No,M-Pesa Ref,Amount,Posted,Narration\n"
        "D1,X1,12.5O,2024-05-06T09:00:00+03:00,a\n"
        "D2,X2,10.00,yesterday,b\n"
    )
    with pytest.raises(ReconcileError, match="nothing of 600977 was routed"):
        run_reconciliation(store, ACCOUNT, DAY, DAY, backoffice=export, config=_settings(sink=None))
    report = run_reconciliation(store, ACCOUNT, DAY, DAY, backoffice=export, config=_settings())
    notes = "\n".join(report.notes)
    assert "export.csv:2: Amount: '12.5O' is not a number" in notes
    assert "export.csv:3: Posted: 'yesterday' is not a ISO 8601 time" in notes


async def test_a_days_charges_posted_as_one_line_match_as_a_group(
    store: Store, tmp_path: Path, backoffice: BackOffice
) -> None:
    from decimal import Decimal

    from pesabridge.config import parse_config

    from .scenario import ACCOUNT as account
    from .scenario import ingest_statement

    cfg = parse_config(
        {
            "sources": [{"name": "statements", "type": "folder", "path": "inbox"}],
            "sinks": [{"name": "erp", "type": "http", "url": backoffice.url}],
            "routes": [{"from": ["statements"], "to": ["erp"], "entries": ["payment", "charge"]}],
        },
        environ={},
    )
    from pesabridge.devtools.reconcile_days import generate_day

    day = generate_day(DAY, 6, anomalies=False)
    statement = day.write_statement(tmp_path / "s.csv")
    ingest_statement(store, statement, cfg)
    await drain(store, cfg)
    bodies = [p["body"] for p in backoffice.state.postings.values()]
    payments = [b for b in bodies if b["entry"] == "payment"]
    charges = sum(Decimal(b["amount"]) for b in bodies if b["entry"] == "charge")
    lines = ["Ref,Amount,When,Type"]
    lines += [f"{b['receipt']},{b['amount']},{b['occurred_at']},payment" for b in payments]
    lines.append(f",{charges},2024-05-06T23:00:00+03:00,charge")  # one line for the day
    export = tmp_path / "export.csv"
    export.write_text("\n".join(lines) + "\n")
    settings = ReconciliationConfig.model_validate(
        {"backoffice": {"columns": {"receipt": "Ref", "amount": "Amount", "time": "When",
                                    "entry": "Type"}}}
    )  # fmt: skip
    report = run_reconciliation(store, account, DAY, DAY, backoffice=export, config=settings)
    assert report.clean, [(e.kind, e.receipt, e.detail) for e in report.exceptions]
    (group,) = [m for m in report.matches if m.method == "back office: group"]
    assert group.pairs == 1
    (summary,) = report.days
    assert summary.count("posted") == 12  # 6 payments, 6 charges


async def test_a_posting_with_another_amount_is_a_discrepancy(
    store: Store, tmp_path: Path, backoffice: BackOffice
) -> None:
    receipts = await _delivered_day(store, tmp_path, backoffice)
    export = write_backoffice_export(tmp_path / "e.csv", backoffice.state.postings.values())
    lines = export.read_text().splitlines()
    (index,) = [i for i, line in enumerate(lines) if f",{receipts[5]}," in line]
    cells = lines[index].split(",")
    cells[2] = "1.00"
    lines[index] = ",".join(cells)
    export.write_text("\n".join(lines) + "\n")
    report = run_reconciliation(store, ACCOUNT, DAY, DAY, backoffice=export, config=_settings())
    (found,) = report.exceptions
    assert (found.kind, found.receipt, found.sink) == ("discrepancy", receipts[5], "erp")
    assert "says 1.00 KES" in found.detail
