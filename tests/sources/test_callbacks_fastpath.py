"""The callback fast path: exact callback URLs bypass Starlette's router, nothing else."""

from __future__ import annotations

import aiohttp

from pesabridge.config import parse_config
from pesabridge.runtime import Runtime
from pesabridge.server.fastpath import CallbackApp
from pesabridge.store import Store

from .callback_helpers import post, serving

TOKEN = "tok_0123456789abcdef"


def test_the_table_holds_the_exact_callback_urls_only(store: Store) -> None:
    config = parse_config(
        {
            "sources": [
                {"name": "c2b", "type": "daraja-c2b", "path": "/c2b", "path_token": "${T}"},
                {"name": "mtn", "type": "mtn-momo", "path": "/mtn"},
            ]
        },
        environ={"T": TOKEN},
    )
    app = Runtime(config, store=store).app
    assert isinstance(app, CallbackApp)
    assert set(app.fast) == {
        ("POST", f"/c2b/{TOKEN}/confirmation"),  # validation stays behind the router
        ("POST", "/mtn"),
        ("PUT", "/mtn"),
    }


async def test_a_wrong_token_goes_the_ordinary_way_and_is_refused(store: Store) -> None:
    sources = [{"name": "c2b", "type": "daraja-c2b", "path": "/c2b", "path_token": "${T}"}]
    async with serving(store, sources, {"T": TOKEN}) as runtime:
        wrong = await post(runtime, "/c2b/tok_0123456789abcdeX/confirmation", b"{}")
        right_but_bad_json = await post(runtime, f"/c2b/{TOKEN}/confirmation", b"{")
        health = await runtime_get(runtime, "/healthz")
    assert wrong.status == 403
    assert right_but_bad_json.status == 400  # through the fast path: parsed and refused
    assert health == 200


async def runtime_get(runtime: Runtime, path: str) -> int:
    async with (
        aiohttp.ClientSession() as client,
        client.get(f"http://127.0.0.1:{runtime.port}{path}") as reply,
    ):
        return reply.status
