"""MTN MoMo callbacks confirmed with the status endpoint of a real local stand-in for MTN.

The stand-in (``pesabridge.devtools.mtn_status``) is a real HTTP server issuing tokens and
answering request-to-pay status queries. Each test runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError
from sqlalchemy import select

from pesabridge.devtools.mtn_status import MtnStatusServer
from pesabridge.sources.callback.mtn_status import MtnConfirmConfig
from pesabridge.store import Store
from pesabridge.store.failures import list_failed_attempts
from pesabridge.store.schema import discrepancies, evidence, rejects, transactions

from .callback_helpers import counts, post, serving

SECRETS = {"MTN_SUB": "sub-key-1", "MTN_USER": str(uuid.uuid4()), "MTN_KEY": "api-key-1"}


@pytest.fixture
async def mtn() -> AsyncIterator[MtnStatusServer]:
    server = MtnStatusServer(
        subscription_key=SECRETS["MTN_SUB"],
        api_user=SECRETS["MTN_USER"],
        api_key=SECRETS["MTN_KEY"],
        target_environment="mtnuganda",
    )
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


def source(mtn: MtnStatusServer, **confirm: Any) -> dict[str, Any]:
    return {
        "name": "momo",
        "type": "mtn-momo",
        "path": "/mtn",
        "account": "MTN-UG-1",
        "confirm": {
            "base_url": mtn.url,
            "subscription_key": "${MTN_SUB}",
            "api_user": "${MTN_USER}",
            "api_key": "${MTN_KEY}",
            "target_environment": "mtnuganda",
            "timeout": 2,
            **confirm,
        },
    }


def callback(**fields: Any) -> bytes:
    body = {
        "amount": "100",
        "currency": "UGX",
        "financialTransactionId": "23503452",
        "externalId": "947354",
        "payer": {"partyIdType": "MSISDN", "partyId": "256772123456"},
        "status": "SUCCESSFUL",
        **fields,
    }
    return json.dumps(body).encode()


def stored(store: Store) -> list[tuple[str, int]]:
    with store.read() as conn:
        rows = conn.execute(select(transactions.c.receipt, transactions.c.amount_minor)).all()
    return [(r[0], r[1]) for r in rows]


async def test_a_confirmed_callback_is_recorded_with_mtns_answer_as_evidence(
    store: Store, mtn: MtnStatusServer
) -> None:
    reference = str(uuid.uuid4())
    mtn.add(reference, financialTransactionId="23503452", amount="100")
    async with serving(store, [source(mtn)], SECRETS) as runtime:
        reply = await post(runtime, f"/mtn?referenceId={reference}", callback())
        again = await post(runtime, f"/mtn?referenceId={reference}", callback())
    assert (reply.status, reply.body) == (200, b"")
    assert again.status == 200  # a repeat is answered and stored once
    assert stored(store) == [("23503452", 100)]
    assert mtn.state.asked == [reference, reference]
    assert mtn.state.token_requests == 1  # the token is cached between calls
    headers = mtn.state.headers[0]
    assert headers["X-Target-Environment"] == "mtnuganda"
    assert headers["Ocp-Apim-Subscription-Key"] == SECRETS["MTN_SUB"]
    assert headers["Authorization"].startswith("Bearer ")
    with store.read() as conn:
        sources = sorted(r[0] for r in conn.execute(select(evidence.c.source)))
    assert any(s.endswith(":status") for s in sources)  # MTN's answer is kept as evidence


async def test_mtn_failed_wins_over_a_callback_claiming_success(
    store: Store, mtn: MtnStatusServer
) -> None:
    reference = str(uuid.uuid4())
    mtn.add(reference, status="FAILED", reason="APPROVAL_REJECTED", externalId="947354")
    async with serving(store, [source(mtn)], SECRETS) as runtime:
        reply = await post(runtime, f"/mtn?referenceId={reference}", callback(), method="PUT")
    assert reply.status == 200
    assert counts(store) == (0, 1, 0)  # no payment: a failed attempt, as MTN says
    with store.read() as conn:
        failures = list_failed_attempts(conn)
    assert [(f.request_id, f.code) for f in failures] == [("947354", "APPROVAL_REJECTED")]


async def test_a_callback_disagreeing_on_the_amount_becomes_a_discrepancy(
    store: Store, mtn: MtnStatusServer
) -> None:
    reference = str(uuid.uuid4())
    mtn.add(reference, financialTransactionId="23503452", amount="1000")
    async with serving(store, [source(mtn)], SECRETS) as runtime:
        reply = await post(runtime, f"/mtn?referenceId={reference}", callback(amount="100"))
    assert reply.status == 200
    assert stored(store) == [("23503452", 1000)]  # MTN's amount stands
    with store.read() as conn:
        rows = conn.execute(
            select(discrepancies.c.field, discrepancies.c.recorded, discrepancies.c.observed)
        ).all()
    assert [(r[0], Decimal(r[1]), Decimal(r[2])) for r in rows] == [
        ("amount", Decimal(1000), Decimal(100))
    ]


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("", "no referenceId"),
        ("?referenceId=not-a-uuid", "is not a UUID"),
        (f"?referenceId={uuid.uuid4()}", "MTN does not know"),
    ],
)
async def test_unconfirmable_callbacks_are_quarantined_not_recorded(
    store: Store, mtn: MtnStatusServer, query: str, reason: str
) -> None:
    async with serving(store, [source(mtn)], SECRETS) as runtime:
        reply = await post(runtime, f"/mtn{query}", callback())
    assert reply.status == 400
    assert counts(store) == (0, 0, 1)
    with store.read() as conn:
        kept = conn.execute(select(rejects.c.reason, rejects.c.raw)).one()
    assert reason in kept[0]
    assert kept[1] == callback()  # the body, for a person to look at


async def test_pending_at_mtn_is_not_a_payment(store: Store, mtn: MtnStatusServer) -> None:
    reference = str(uuid.uuid4())
    mtn.add(reference, status="PENDING")
    async with serving(store, [source(mtn)], SECRETS) as runtime:
        reply = await post(runtime, f"/mtn?referenceId={reference}", callback())
    assert reply.status == 400
    assert counts(store) == (0, 0, 1)


async def test_mtn_unavailable_quarantines_or_records_as_configured(
    store: Store, mtn: MtnStatusServer
) -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    mtn.add(first)
    mtn.add(second)
    mtn.fail_next = 2
    async with serving(store, [source(mtn)], SECRETS) as runtime:
        kept = await post(runtime, f"/mtn?referenceId={first}", callback())
    assert kept.status == 400
    assert counts(store) == (0, 0, 1)
    async with serving(store, [source(mtn, on_unavailable="record")], SECRETS) as runtime:
        recorded = await post(
            runtime, f"/mtn?referenceId={second}", callback(financialTransactionId="777")
        )
    assert recorded.status == 200
    assert stored(store) == [("777", 100)]  # as the callback said


async def test_a_slow_mtn_is_given_up_on_within_the_timeout(
    store: Store, mtn: MtnStatusServer
) -> None:
    reference = str(uuid.uuid4())
    mtn.add(reference)
    mtn.delay = 3
    async with serving(store, [source(mtn, timeout=0.5)], SECRETS) as runtime:
        reply = await post(runtime, f"/mtn?referenceId={reference}", callback())
    assert reply.status == 400
    assert counts(store) == (0, 0, 1)


async def test_a_revoked_token_is_renewed_once(store: Store, mtn: MtnStatusServer) -> None:
    first, second = str(uuid.uuid4()), str(uuid.uuid4())
    mtn.add(first, financialTransactionId="1001")
    mtn.add(second, financialTransactionId="1002")
    async with serving(store, [source(mtn)], SECRETS) as runtime:
        await post(runtime, f"/mtn?referenceId={first}", callback(financialTransactionId="1001"))
        mtn.revoke_tokens()
        reply = await post(
            runtime,
            "/mtn",
            callback(financialTransactionId="1002"),
            headers={"X-Reference-Id": second},
        )
    assert reply.status == 200
    assert sorted(stored(store)) == [("1001", 100), ("1002", 100)]
    assert mtn.state.token_requests == 2


async def test_a_static_bearer_token_is_sent_as_given(store: Store, mtn: MtnStatusServer) -> None:
    mtn.tokens.add("static-token-1")
    reference = str(uuid.uuid4())
    mtn.add(reference)
    config = source(mtn)
    del config["confirm"]["api_user"], config["confirm"]["api_key"]
    config["confirm"]["bearer_token"] = "static-token-1"
    async with serving(store, [config], SECRETS) as runtime:
        reply = await post(runtime, f"/mtn?referenceId={reference}", callback())
    assert reply.status == 200
    assert mtn.state.token_requests == 0
    assert mtn.state.headers[0]["Authorization"] == "Bearer static-token-1"


def test_confirm_needs_one_kind_of_credentials() -> None:
    base = {"base_url": "https://sandbox.momodeveloper.mtn.com", "subscription_key": "k"}
    with pytest.raises(ValidationError, match="either api_user and api_key, or bearer_token"):
        MtnConfirmConfig.model_validate(base)
    with pytest.raises(ValidationError, match="api_user and api_key go together"):
        MtnConfirmConfig.model_validate({**base, "api_user": "u"})
    with pytest.raises(ValidationError, match="either"):
        MtnConfirmConfig.model_validate(
            {**base, "api_user": "u", "api_key": "k", "bearer_token": "t"}
        )
