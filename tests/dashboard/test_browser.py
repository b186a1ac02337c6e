"""The dashboard in a real browser (Playwright + Debian's headless Chromium) against a
real ``pesabridge run`` delivering to the real test back office."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import requests

from pesabridge.devtools.backoffice import BackOffice, BackOfficeThread, Rule
from pesabridge.store import Store
from tests.helpers import free_port, wait_for

from . import seed
from .browser import ARGS, CHROMIUM, check_page

pytestmark = pytest.mark.timeout(300)


@dataclass
class Running:
    url: str
    store: Store
    backoffice: BackOffice


def _users_add(db: str, name: str, role: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pesabridge", "users", "add", name, "--role", role, "--db", db],
        env={**os.environ, "PESABRIDGE_PASSWORD": seed.PASSWORDS[name]},
        check=True,
        capture_output=True,
    )


def _dead(store: Store, receipt: str) -> bool:
    return any(d.transaction.receipt == receipt for d in store.deliveries(state="dead"))


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """``pesabridge run`` with users (made by ``pesabridge users add``), three payments,
    one of them dead-lettered by the back office (422), the others delivered."""
    tmp = tmp_path_factory.mktemp("dashboard")
    db = f"sqlite:///{tmp / 'ledger.db'}"
    for name, role in (("admin", "admin"), ("olive", "operator"), ("victor", "viewer")):
        _users_add(db, name, role)
    statement = tmp / "statement.jsonl"
    statement.write_text('{"provider": "mpesa"}\nnot json\n')
    subprocess.run(
        [sys.executable, "-m", "pesabridge", "ingest", "-f", "jsonl", str(statement), "--db", db],
        capture_output=True,
        check=False,
    )
    port = free_port()
    with BackOfficeThread() as backoffice:
        backoffice.add_rule(
            Rule(
                status=422,
                body='{"error": "unknown account"}',
                match=lambda b: "SLK1000001" in json.dumps(b),
            )
        )
        config = tmp / "pesabridge.yaml"
        config.write_text(
            json.dumps(
                {
                    "database": db,
                    "server": {"host": "127.0.0.1", "port": port},
                    "worker": {"poll_interval": 0.1},
                    "sources": [{"name": "daraja", "type": "daraja-c2b"}],
                    "sinks": [
                        {
                            "name": "erp",
                            "type": "http",
                            "url": backoffice.url,
                            "headers": {"Authorization": "Bearer erp-token-123"},
                        }
                    ],
                    "routes": [{"from": ["daraja"], "to": ["erp"]}],
                }
            )
        )
        store = Store.open(db)
        seed.payments(store)
        log = tmp / "run.log"
        process = subprocess.Popen(
            [sys.executable, "-m", "pesabridge", "run", "-c", str(config)],
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            cwd=tmp,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for(lambda: requests.get(url + "/healthz").ok, 30, "the server")
            wait_for(lambda: len(backoffice.state.postings) == 2, 30, "two postings")
            wait_for(lambda: _dead(store, "SLK1000001"), 30, "the dead letter")
            yield Running(url, store, backoffice)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(30)
            store.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: run `make chromium` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield launched
        launched.close()


def _login(browser: Any, running: Running, name: str, **options: Any) -> Any:
    context = browser.new_context(accept_downloads=True, **options)
    page = context.new_page()
    page.goto(running.url + "/ui/")
    assert page.url.startswith(running.url + "/ui/login")
    page.get_by_label("User name").fill(name)
    page.keyboard.press("Tab")
    page.keyboard.type(seed.PASSWORDS[name])
    page.keyboard.press("Enter")
    page.wait_for_url(running.url + "/ui/")
    return page


def test_operator_finds_a_payment_and_replays_its_dead_letter(
    browser: Any, running: Running
) -> None:
    from playwright.sync_api import expect

    page = _login(browser, running, "olive")
    check_page(page, "overview")
    expect(page.get_by_role("heading", name="Today")).to_be_visible()
    page.get_by_role("link", name="Transactions").click()
    page.get_by_label("Receipt").fill("SLK1000002")
    page.get_by_label("Receipt").press("Enter")
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody")).to_contain_text("JOHN OTIENO")
    check_page(page, "transactions")
    page.get_by_label("Receipt").fill("")
    page.get_by_label("Phone (last 4 digits)").fill("5678")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page.locator("tbody")).to_contain_text("2547****5678")
    page.get_by_role("link", name="SLK1000001").click()
    expect(page.locator("h1")).to_contain_text("SLK1000001")
    expect(page.locator("[data-state]")).to_have_text("dead")
    expect(page.locator("pre").first).to_contain_text("[redacted]")
    check_page(page, "transaction-dead")

    page.get_by_role("link", name="Failures").click()
    expect(page.locator("summary").first).to_contain_text("HTTP 422")
    check_page(page, "failures")
    page.get_by_label("Select SLK1000001").check()
    page.get_by_role("button", name="Replay selected").click()
    page.get_by_role("link", name="Transactions").click()
    page.get_by_label("Receipt").fill("SLK1000001")
    page.get_by_label("Receipt").press("Enter")
    page.get_by_role("link", name="SLK1000001").click()
    # The page reloads itself while a delivery is on its way.
    expect(page.locator("[data-state]")).to_have_text("delivered", timeout=30_000)
    check_page(page, "transaction-delivered")
    # Both attempts are listed and counted, though the replay restarted the counter.
    expect(page.locator("ol.timeline li")).to_have_count(2)
    expect(page.get_by_text("2 attempt(s) (1 since the last replay)")).to_be_visible()
    assert len(running.backoffice.state.postings) == 3
    page.get_by_role("link", name="Audit").click()
    expect(page.locator("tbody tr").first).to_contain_text("replay")
    check_page(page, "audit")
    page.context.close()


def test_csv_export_downloads_the_search_result(browser: Any, running: Running) -> None:
    page = _login(browser, running, "admin")
    page.goto(running.url + "/ui/transactions?sort=receipt&direction=asc")
    with page.expect_download() as download:
        page.get_by_role("link", name="Export these results as CSV").click()
    text = Path(download.value.path()).read_text()
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["receipt"] for r in rows] == ["SLK1000001", "SLK1000002", "SLK1000003"]
    assert rows[0]["msisdn"] == "254712345678"  # admins see numbers
    assert rows[2]["name"].startswith("'=")
    page.get_by_role("link", name="Files").click()
    check_page(page, "files")
    page.get_by_role("link", name="Settings").click()
    settings = page.locator("main").inner_text()
    assert "erp-token-123" not in page.content()
    assert "Users" in settings
    page.locator("summary").first.press("Enter")  # opens the first source's section
    check_page(page, "settings")
    page.get_by_role("link", name="Reconciliation").click()
    check_page(page, "reconciliation")
    page.context.close()


def test_a_viewer_sees_masked_numbers_and_cannot_replay(browser: Any, running: Running) -> None:
    from playwright.sync_api import expect

    # On a phone: nothing wider than the screen but the tables, which scroll in place.
    page = _login(browser, running, "victor", viewport={"width": 390, "height": 844})
    check_page(page, "overview-phone")
    page.goto(running.url + "/ui/transactions")
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    check_page(page, "transactions-phone")
    expect(page.locator("tbody")).to_contain_text("2547****5678")
    assert "254712345678" not in page.content()
    page.get_by_label("Phone (last 4 digits)").fill("254712345678")
    page.get_by_label("Phone (last 4 digits)").press("Enter")
    expect(page.locator(".field-error")).to_contain_text("last 4 digits")
    delivery = next(d for d in running.store.deliveries() if d.transaction.receipt == "SLK1000003")
    page.goto(f"{running.url}/ui/failures")
    expect(page.get_by_role("button", name="Replay selected")).to_have_count(0)
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    answer = page.request.post(
        f"{running.url}/ui/failures/replay",
        form={"delivery": str(delivery.id), "csrf": token, "scope": "selected"},
    )
    assert answer.status == 403
    check_page(page, "failures-viewer")
    page.goto(f"{running.url}/ui/settings")
    expect(page.locator(".error")).to_contain_text("needs the admin role")
    page.context.close()


def test_a_post_without_its_csrf_token_is_refused(browser: Any, running: Running) -> None:
    page = _login(browser, running, "olive")
    answer = page.request.post(
        f"{running.url}/ui/failures/replay", form={"delivery": "1", "scope": "selected"}
    )
    assert answer.status == 403
    assert "security token" in answer.text()
    page.context.close()


def test_repeated_bad_logins_lock_the_account(browser: Any, running: Running) -> None:
    from playwright.sync_api import expect

    subprocess.run(
        [sys.executable, "-m", "pesabridge", "users", "add", "lena", "--db", running.store.url],
        env={**os.environ, "PESABRIDGE_PASSWORD": "lena-password-1"},
        check=True,
        capture_output=True,
    )
    page = browser.new_context().new_page()
    page.goto(running.url + "/ui/login")
    check_page(page, "login")
    for _ in range(5):
        page.get_by_label("User name").fill("lena")
        page.get_by_label("Password").fill("not her password")
        page.get_by_role("button", name="Log in").click()
        expect(page.locator(".error")).to_be_visible()
    page.get_by_label("User name").fill("lena")
    page.get_by_label("Password").fill("lena-password-1")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator(".error")).to_contain_text("locked")
    assert "/ui/login" in page.url
    page.context.close()


def test_an_operator_resolves_a_reconciliation_exception(
    browser: Any, running: Running, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    from pesabridge.dashboard.reconciliation import api
    from pesabridge.devtools.reconcile_days import generate_day

    recon = api()
    assert recon is not None, "pesabridge.reconcile does not export the dashboard's functions"
    day = generate_day(date(2024, 5, 6), 12, seed=3)
    for body in day.callbacks:
        answer = requests.post(f"{running.url}/daraja/c2b/confirmation", data=body)
        assert answer.ok
    statement = day.write_statement(tmp_path / "statement.csv")
    recon.run_reconciliation(running.store, day.short_code, day.day, day.day, statement=statement)
    before = recon.list_exceptions(running.store)
    assert before, "the injected anomalies raised no exception"
    page = _login(browser, running, "olive")
    page.get_by_role("link", name="Reconciliation").click()
    expect(page.get_by_role("heading", name="Days")).to_be_visible()
    check_page(page, "reconciliation-open")
    first = before[0]
    page.get_by_label(f"Comment for exception {first.id}").fill("checked with the bank")
    page.get_by_label(f"Comment for exception {first.id}").press("Enter")
    expect(page.locator(".flash")).to_contain_text(f"Exception {first.id} resolved")
    after = recon.list_exceptions(running.store)
    assert first.id not in [x.id for x in after]
    assert len(after) == len(before) - 1
    resolved = recon.list_exceptions(running.store, status="resolved")
    assert [(x.id, x.resolved_by, x.comment) for x in resolved] == [
        (first.id, "olive", "checked with the bank")
    ]
    page.get_by_role("link", name="Audit").click()
    expect(page.locator("tbody tr").first).to_contain_text("recon.resolve")
    page.context.close()
