"""Daraja C2B validation modes: accept all, a rule on the account reference, the back office."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from pesabridge.store import Store

from .callback_helpers import counts, post, sample, serving

VALIDATION = "daraja/c2b_validation_request.json"  # BillRefNumber "acc 0042 "
ACCEPTED = {"ResultCode": "0", "ResultDesc": "Accepted"}


def c2b(validation: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": "c2b", "type": "daraja-c2b", "path": "/c2b", "validation": validation}]


def with_reference(samples_dir: Path, reference: str) -> bytes:
    document = json.loads(sample(samples_dir, VALIDATION))
    document["BillRefNumber"] = reference
    return json.dumps(document).encode()


@pytest.mark.parametrize(
    ("rule", "reference", "code"),
    [
        ({"pattern": r"acc \d{4}"}, "ACC 0042 ", "0"),
        ({"pattern": r"acc \d{4}"}, "acc 42", "C2B00012"),
        ({"accounts": ["INV-1", "inv-2"]}, "inv-1", "0"),
        ({"accounts": ["INV-1"], "ignore_case": False}, "inv-1", "C2B00012"),
        ({"accounts": ["INV-1"], "reject_code": "C2B00016"}, "INV-9", "C2B00016"),
    ],
)
async def test_rule(
    store: Store, samples_dir: Path, rule: dict[str, Any], reference: str, code: str
) -> None:
    async with serving(store, c2b({"mode": "rule", **rule})) as running:
        reply = await post(running, "/c2b/validation", with_reference(samples_dir, reference))
    assert reply.status == 200
    assert reply.json()["ResultCode"] == code
    assert counts(store) == (0, 0, 0)  # a validation is never a payment


class BackOffice:
    """A real HTTP back office deciding validations; ``delay`` makes it slow."""

    def __init__(self) -> None:
        self.answer: Any = {"ResultCode": "0"}
        self.status = 200
        self.delay = 0.0
        self.seen: list[dict[str, Any]] = []
        self.authorization: str | None = None

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append(await request.json())
        self.authorization = request.headers.get("Authorization")
        await asyncio.sleep(self.delay)
        return web.json_response(self.answer, status=self.status)


@pytest.fixture
async def backoffice() -> AsyncIterator[tuple[BackOffice, str]]:
    office = BackOffice()
    app = web.Application()
    app.router.add_post("/validate", office.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield office, f"http://127.0.0.1:{port}/validate"
    finally:
        await runner.cleanup()


async def test_back_office_decides(
    store: Store, samples_dir: Path, backoffice: tuple[BackOffice, str]
) -> None:
    office, url = backoffice
    config = {"mode": "backoffice", "url": url, "token": "${BO_TOKEN}", "timeout": 1.0}
    body = sample(samples_dir, VALIDATION)
    async with serving(store, c2b(config), {"BO_TOKEN": "bo-secret"}) as running:
        accepted = await post(running, "/c2b/validation", body)
        office.answer = {"ResultCode": "C2B00013", "ResultDesc": "amount too small"}
        refused = await post(running, "/c2b/validation", body)
    assert accepted.json() == ACCEPTED
    assert refused.json() == {"ResultCode": "C2B00013", "ResultDesc": "Rejected"}
    assert office.seen[0]["TransID"] == "SE52J8RL3N"
    assert office.authorization == "Bearer bo-secret"


@pytest.mark.parametrize("on_timeout", ["accept", "reject"])
async def test_slow_back_office_gets_the_configured_answer_within_the_deadline(
    store: Store, samples_dir: Path, backoffice: tuple[BackOffice, str], on_timeout: str
) -> None:
    office, url = backoffice
    office.delay = 5.0
    config = {"mode": "backoffice", "url": url, "timeout": 0.5, "on_timeout": on_timeout}
    async with serving(store, c2b(config)) as running:
        started = time.monotonic()
        reply = await post(running, "/c2b/validation", sample(samples_dir, VALIDATION))
        elapsed = time.monotonic() - started
    assert elapsed < 2.0  # well inside Daraja's ~8 s
    assert reply.json()["ResultCode"] == ("0" if on_timeout == "accept" else "C2B00012")


@pytest.mark.parametrize(("status", "answer"), [(500, {"x": 1}), (200, {"ResultCode": "??"})])
async def test_back_office_errors_get_on_error(
    store: Store,
    samples_dir: Path,
    backoffice: tuple[BackOffice, str],
    status: int,
    answer: Any,
) -> None:
    office, url = backoffice
    office.status, office.answer = status, answer
    config = {"mode": "backoffice", "url": url, "on_error": "reject", "reject_code": "C2B00016"}
    async with serving(store, c2b(config)) as running:
        reply = await post(running, "/c2b/validation", sample(samples_dir, VALIDATION))
    assert reply.json() == {"ResultCode": "C2B00016", "ResultDesc": "Rejected"}


def test_incomplete_validation_config_is_refused() -> None:
    from pesabridge.config import parse_config
    from pesabridge.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        parse_config({"sources": c2b({"mode": "rule"})}, environ={})
    assert "mode rule needs pattern or accounts" in str(caught.value)
    with pytest.raises(ConfigError):
        parse_config({"sources": c2b({"mode": "backoffice", "timeout": 9})}, environ={})
