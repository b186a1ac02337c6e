"""Every provider's callback, served by uvicorn: answers, signatures, security, quarantine.

Each test runs once on SQLite and once on PostgreSQL (the ``store`` fixture).
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from pesabridge.runtime import Runtime
from pesabridge.sources.callback.signatures import airtel_hash
from pesabridge.store import Store
from pesabridge.store.failures import list_failed_attempts
from pesabridge.store.schema import rejects

from .callback_helpers import counts, expected, post, receipts, sample, serving

K2_KEY = "pesabridge-k2-test-key"
LEGACY_KEY = "pesabridge-legacy-test-key"
DARAJA_OK = {"ResultCode": 0, "ResultDesc": "Success"}

ALL_SOURCES: list[dict[str, Any]] = [
    {"name": "c2b", "type": "daraja-c2b", "path": "/mpesa/c2b"},
    {"name": "stk", "type": "daraja-stk", "path": "/mpesa/stk", "account": "174379"},
    {"name": "result", "type": "daraja-result", "path": "/mpesa/result", "account": "600992"},
    {"name": "k2", "type": "kopokopo", "path": "/k2", "signing_keys": ["${K2_KEY}"]},
    {
        "name": "legacy",
        "type": "kopokopo-legacy",
        "path": "/k2/legacy",
        "signing_keys": [LEGACY_KEY],
    },
    {"name": "airtel", "type": "airtel", "path": "/airtel", "account": "AIRTEL-UG-1"},
    {"name": "mtn", "type": "mtn-momo", "path": "/mtn", "account": "MTN-UG-1"},
]


@pytest.fixture
async def runtime(store: Store) -> AsyncIterator[Runtime]:
    async with serving(store, ALL_SOURCES, environ={"K2_KEY": K2_KEY}) as running:
        yield running


def k2_headers(samples_dir: Path, name: str) -> dict[str, str]:
    return {"X-KopoKopo-Signature": (samples_dir / f"{name}.sig").read_text().strip()}


# (path, sample, content type, answer status, answer body, filled account or None)
PAYMENTS = [
    ("/mpesa/c2b/confirmation", "daraja/c2b_confirmation_v1_hashed.json", 200, DARAJA_OK, None),
    ("/mpesa/c2b/confirmation", "daraja/c2b_confirmation_v2_masked.json", 200, DARAJA_OK, None),
    ("/mpesa/c2b/confirmation", "daraja/c2b_confirmation_legacy_plain.json", 200, DARAJA_OK, None),
    ("/mpesa/stk", "daraja/stk_callback_success.json", 200, DARAJA_OK, "174379"),
    ("/mpesa/result", "daraja/b2c_result.json", 200, DARAJA_OK, "600992"),
    ("/mpesa/result", "daraja/reversal_result.json", 200, DARAJA_OK, None),
    ("/k2", "kopokopo/k2_buygoods_transaction_received.json", 200, {"status": "ok"}, None),
    ("/k2", "kopokopo/k2_buygoods_transaction_reversed.json", 200, {"status": "ok"}, None),
    (
        "/k2/legacy",
        "kopokopo/legacy_notification.form",
        200,
        {"status": "01", "description": "Accepted"},
        None,
    ),
    (
        "/airtel",
        "airtel/callback.json",
        200,
        {"status": {"code": "200", "message": "SUCCESS", "success": True}},
        "AIRTEL-UG-1",
    ),
    ("/mtn", "mtn/momo_callback_successful.json", 200, None, "MTN-UG-1"),
]


@pytest.mark.parametrize(
    ("path", "name", "status", "answer", "account"), PAYMENTS, ids=[p[1] for p in PAYMENTS]
)
async def test_every_sample_is_recorded_and_answered_with_the_providers_body(
    runtime: Runtime,
    store: Store,
    samples_dir: Path,
    path: str,
    name: str,
    status: int,
    answer: Any,
    account: str | None,
) -> None:
    headers = k2_headers(samples_dir, name) if name.startswith("kopokopo/k2_") else {}
    content_type = (
        "application/x-www-form-urlencoded" if name.endswith(".form") else ("application/json")
    )
    reply = await post(
        runtime, path, sample(samples_dir, name), headers=headers, content_type=content_type
    )
    assert (reply.status, reply.json()) == (status, answer)
    wanted = expected(samples_dir, name)
    got = receipts(store)
    assert got == {t["receipt"]: (t["account"] or account or "") for t in wanted}
    # the ack went out after the commit: the outbox row is there already
    assert store.status()["deliveries"] == {"erp": {"pending": len(wanted)}}


@pytest.mark.parametrize(
    ("path", "name", "code"),
    [
        ("/mpesa/stk", "daraja/stk_callback_failure.json", "1032"),
        ("/mtn", "mtn/momo_callback_failed.json", "INTERNAL_PROCESSING_ERROR"),
    ],
)
async def test_failed_attempts_are_recorded_once_and_never_posted(
    runtime: Runtime, store: Store, samples_dir: Path, path: str, name: str, code: str
) -> None:
    body = sample(samples_dir, name)
    for _ in range(2):  # the provider's retry is stored once
        reply = await post(runtime, path, body)
        assert reply.status == 200
    assert counts(store) == (0, 1, 0)
    assert store.status()["deliveries"] == {}
    with store.read() as conn:
        (row,) = list_failed_attempts(conn)
    assert row.code == code
    assert row.account in ("174379", "MTN-UG-1")


async def test_validation_request_is_answered_and_never_posted(
    runtime: Runtime, store: Store, samples_dir: Path
) -> None:
    body = sample(samples_dir, "daraja/c2b_validation_request.json")
    reply = await post(runtime, "/mpesa/c2b/validation", body)
    assert (reply.status, reply.json()) == (200, {"ResultCode": "0", "ResultDesc": "Accepted"})
    assert counts(store) == (0, 0, 0)


async def test_duplicate_callbacks_are_acknowledged_and_stored_once(
    runtime: Runtime, store: Store, samples_dir: Path
) -> None:
    body = sample(samples_dir, "daraja/stk_callback_success.json")
    replies = await asyncio.gather(*(post(runtime, "/mpesa/stk", body) for _ in range(10)))
    assert {(r.status, json.dumps(r.json())) for r in replies} == {(200, json.dumps(DARAJA_OK))}
    assert counts(store) == (1, 0, 0)
    assert store.status()["evidence"] == 1


# -- signatures -------------------------------------------------------------------------

K2_RECEIVED = "kopokopo/k2_buygoods_transaction_received.json"


async def test_k2_signature_good_bad_missing_and_replayed(
    runtime: Runtime, store: Store, samples_dir: Path
) -> None:
    body = sample(samples_dir, K2_RECEIVED)
    good = k2_headers(samples_dir, K2_RECEIVED)
    wrong_key = hmac.new(b"another-key", body, hashlib.sha256).hexdigest()
    for headers in ({}, {"X-KopoKopo-Signature": "00" * 32}, {"X-KopoKopo-Signature": wrong_key}):
        reply = await post(runtime, "/k2", body, headers=headers)
        assert (reply.status, reply.body) == (401, b"")  # no detail
    tampered = body.replace(b'"2350.0"', b'"9350.0"')
    assert tampered != body
    assert (await post(runtime, "/k2", tampered, headers=good)).status == 401
    assert counts(store) == (0, 0, 0)  # refusals never become transactions (or rejects)
    # an uppercase hex signature is the same signature
    upper = {"X-KopoKopo-Signature": good["X-KopoKopo-Signature"].upper()}
    assert (await post(runtime, "/k2", body, headers=upper)).status == 200
    # a replayed body is acknowledged and stored once
    assert (await post(runtime, "/k2", body, headers=good)).status == 200
    assert counts(store) == (1, 0, 0)
    refused = REGISTRY.get_sample_value(
        "pesabridge_callbacks_refused_total", {"source": "k2", "reason": "signature"}
    )
    assert refused is not None
    assert refused >= 4


async def test_k2_keys_can_be_rotated(store: Store, samples_dir: Path) -> None:
    sources = [
        {"name": "k2", "type": "kopokopo", "path": "/k2", "signing_keys": ["new-key", K2_KEY]}
    ]
    body = sample(samples_dir, K2_RECEIVED)
    new_sig = hmac.new(b"new-key", body, hashlib.sha256).hexdigest()
    async with serving(store, sources) as running:
        old = await post(running, "/k2", body, headers=k2_headers(samples_dir, K2_RECEIVED))
        new = await post(running, "/k2", body, headers={"X-KopoKopo-Signature": new_sig})
    assert (old.status, new.status) == (200, 200)
    assert counts(store) == (1, 0, 0)


async def test_k2_without_a_configured_key_refuses_everything(
    store: Store, samples_dir: Path
) -> None:
    async with serving(store, [{"name": "k2", "type": "kopokopo", "path": "/k2"}]) as running:
        body = sample(samples_dir, K2_RECEIVED)
        reply = await post(running, "/k2", body, headers=k2_headers(samples_dir, K2_RECEIVED))
    assert reply.status == 401
    assert counts(store) == (0, 0, 0)


async def test_legacy_signature_bad_and_missing_answer_03(
    runtime: Runtime, store: Store, samples_dir: Path
) -> None:
    body = sample(samples_dir, "kopokopo/legacy_notification.form")
    form = "application/x-www-form-urlencoded"
    bad = body.replace(b"amount=1750", b"amount=9750")
    missing = body.split(b"&signature=")[0]
    for variant in (bad, missing):
        reply = await post(runtime, "/k2/legacy", variant, content_type=form)
        assert reply.status == 401
        assert reply.json() == {"status": "03", "description": "Rejected"}
    assert counts(store) == (0, 0, 0)


async def test_legacy_signature_matches_the_published_vector() -> None:
    from pesabridge.sources.callback.signatures import legacy_signature

    fields = {
        "service_name": "MPESA",
        "business_number": "512900",
        "transaction_reference": "KX52LM91QP",
        "internal_transaction_id": "48213",
        "transaction_timestamp": "2016-08-09T11:42:03Z",
        "transaction_type": "Paybill",
        "account_number": "0042-B",
        "sender_phone": "+254711000222",
        "first_name": "Mary",
        "middle_name": "W",
        "last_name": "Kamau",
        "amount": "1750",
        "currency": "KES",
    }
    assert legacy_signature(fields, LEGACY_KEY.encode()) == "WsjcKfW7kRnRFDwe7tmmn1WTFXQ="


async def test_airtel_hash_is_verified_only_when_keyed(store: Store, samples_dir: Path) -> None:
    document = json.loads(sample(samples_dir, "airtel/callback.json"))
    sources = [{"name": "airtel", "type": "airtel", "path": "/airtel", "signing_keys": ["ak"]}]
    async with serving(store, sources) as running:
        # the documentation's hash: its key is not ours
        assert (await post(running, "/airtel", json.dumps(document).encode())).status == 401
        document["hash"] = airtel_hash(document["transaction"], b"ak")
        assert (await post(running, "/airtel", json.dumps(document).encode())).status == 200
    assert counts(store) == (1, 0, 0)


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


# -- who may call -----------------------------------------------------------------------

C2B_V1 = "daraja/c2b_confirmation_v1_hashed.json"


async def test_ip_allow_list_without_a_trusted_proxy(store: Store, samples_dir: Path) -> None:
    sources = [
        {"name": "c2b", "type": "daraja-c2b", "path": "/c2b", "allow_ips": ["@safaricom"]},
    ]
    body = sample(samples_dir, C2B_V1)
    async with serving(store, sources) as running:
        # X-Forwarded-For from an untrusted peer is not believed
        reply = await post(
            running,
            "/c2b/confirmation",
            body,
            headers={"X-Forwarded-For": "196.201.214.200"},
        )
    assert (reply.status, reply.body) == (403, b"")
    assert counts(store) == (0, 0, 0)


async def test_ip_allow_list_behind_a_trusted_proxy(store: Store, samples_dir: Path) -> None:
    sources = [
        {
            "name": "c2b",
            "type": "daraja-c2b",
            "path": "/c2b",
            "allow_ips": ["@safaricom", "10.20.0.0/16"],
            "trusted_proxies": ["127.0.0.1/32", "10.0.0.0/24"],
        },
    ]
    body = sample(samples_dir, C2B_V1)
    url = "/c2b/confirmation"
    async with serving(store, sources) as running:
        # client, then a second trusted proxy: the rightmost untrusted hop is the client
        ok = await post(
            running, url, body, headers={"X-Forwarded-For": "196.201.214.200, 10.0.0.7"}
        )
        spoofed = await post(
            running, url, body, headers={"X-Forwarded-For": "196.201.214.200, 8.8.8.8"}
        )
        garbled = await post(running, url, body, headers={"X-Forwarded-For": "not-an-ip"})
        bare = await post(running, url, body)  # the proxy itself is not the client
    assert ok.status == 200
    assert (spoofed.status, garbled.status, bare.status) == (403, 403, 403)
    assert counts(store) == (1, 0, 0)


async def test_basic_auth_and_path_token(store: Store, samples_dir: Path) -> None:
    token = "t0k3n-abcdefghijklmnop"
    sources = [
        {
            "name": "c2b",
            "type": "daraja-c2b",
            "path": "/c2b",
            "path_token": "${C2B_TOKEN}",
            "basic_auth": {"username": "daraja", "password": "${C2B_PASSWORD}"},
        }
    ]
    environ = {"C2B_TOKEN": token, "C2B_PASSWORD": "s3cret-pass"}
    body = sample(samples_dir, C2B_V1)
    good = basic("daraja", "s3cret-pass")
    async with serving(store, sources, environ) as running:
        wrong_token = await post(
            running, "/c2b/wrong-token-abcdefgh/confirmation", body, headers=good
        )
        no_auth = await post(running, f"/c2b/{token}/confirmation", body)
        bad_auth = await post(
            running, f"/c2b/{token}/confirmation", body, headers=basic("daraja", "x")
        )
        ok = await post(running, f"/c2b/{token}/confirmation", body, headers=good)
        no_token = await post(running, "/c2b/confirmation", body, headers=good)
        async with (
            aiohttp.ClientSession() as client,
            client.get(f"http://127.0.0.1:{running.port}/openapi.json") as spec,
        ):
            document = await spec.json()
    assert (wrong_token.status, wrong_token.body) == (403, b"")
    assert no_auth.status == 401
    assert no_auth.headers["WWW-Authenticate"] == 'Basic realm="c2b"'
    assert bad_auth.status == 401
    assert ok.status == 200
    assert no_token.status in (404, 405)
    assert counts(store) == (1, 0, 0)
    assert token not in json.dumps(document)
    assert "/c2b/{token}/confirmation" in document["paths"]


# -- bodies -----------------------------------------------------------------------------


async def test_oversized_bodies_are_refused(store: Store, samples_dir: Path) -> None:
    sources = [{"name": "stk", "type": "daraja-stk", "path": "/stk", "max_body": 1024}]
    async with serving(store, sources) as running:
        big = b'{"Body": "' + b"x" * 4096 + b'"}'
        declared = await post(running, "/stk", big)

        async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as read
            for _ in range(8):
                yield b"x" * 512

        async with (
            aiohttp.ClientSession() as client,
            client.post(f"http://127.0.0.1:{running.port}/stk", data=chunks()) as response,
        ):
            streamed = response.status
        small = await post(running, "/stk", sample(samples_dir, "daraja/stk_callback_success.json"))
    assert (declared.status, declared.body) == (413, b"")
    assert streamed == 413
    assert small.status == 200
    assert counts(store) == (1, 0, 0)  # refused bodies are not quarantined either


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"Body": {"stkCallback": ', None),  # bad JSON
        (b'["not", "an", "object"]', None),
        (b'{"Body": {"stkCallback": {"ResultCode": 0}}}', "Body.stkCallback"),
    ],
    ids=["bad-json", "not-an-object", "missing-fields"],
)
async def test_malformed_bodies_are_quarantined_and_answered_400(
    store: Store, samples_dir: Path, body: bytes, field: str | None
) -> None:
    sources = [{"name": "stk", "type": "daraja-stk", "path": "/stk", "quarantine_max_bytes": 16}]
    async with serving(store, sources) as running:
        reply = await post(running, "/stk", body)
        good = await post(running, "/stk", sample(samples_dir, "daraja/stk_callback_success.json"))
    assert reply.status == 400
    assert reply.json()["ResultCode"] == 1
    assert good.status == 200  # nothing else is affected
    assert counts(store) == (1, 0, 1)
    with store.read() as conn:
        (row,) = conn.execute(select(rejects)).mappings()
    assert row["raw"] == body[:16]  # size-capped
    assert row["source"].startswith("stk:")
    if field is not None:
        assert (row["field"] or "").startswith(field)


async def test_concurrent_callbacks_share_commits(
    runtime: Runtime, store: Store, samples_dir: Path
) -> None:
    document = json.loads(sample(samples_dir, C2B_V1))

    def body(i: int) -> bytes:
        return json.dumps({**document, "TransID": f"SG{i:08d}"}).encode()

    before = runtime.committer.batches
    replies = await asyncio.gather(
        *(post(runtime, "/mpesa/c2b/confirmation", body(i)) for i in range(64))
    )
    assert {r.status for r in replies} == {200}
    assert counts(store)[0] == 64
    assert runtime.committer.batches - before < 64  # grouped: fewer commits than callbacks


async def test_openapi_document_lists_every_callback(runtime: Runtime) -> None:
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"http://127.0.0.1:{runtime.port}/openapi.json") as response,
    ):
        document = await response.json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) >= {
        "/healthz",
        "/metrics",
        "/mpesa/c2b/confirmation",
        "/mpesa/c2b/validation",
        "/mpesa/stk",
        "/mpesa/result",
        "/k2",
        "/k2/legacy",
        "/airtel",
        "/mtn",
    }


def test_refusal_logs_carry_no_secrets(capsys: pytest.CaptureFixture[str]) -> None:
    # the config's keys are SecretStr: their repr never shows them
    from pesabridge.config import parse_config

    config = parse_config(
        {"sources": [{"name": "k2", "type": "kopokopo", "signing_keys": [K2_KEY]}]}, environ={}
    )
    assert K2_KEY not in repr(config)
    assert K2_KEY not in str(config.model_dump())
    assert base64.b64encode(K2_KEY.encode()).decode() not in repr(config)
