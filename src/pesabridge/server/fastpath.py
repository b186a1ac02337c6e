"""The callback fast path: exact callback URLs answered without Starlette's router.

A provider's callback is the one request this server must answer thousands of times a
second. Starlette's middleware stack and router cost about as much per request as the
callback chain's own Python work, so :class:`CallbackApp` looks the request's method and
exact path up in one dict first and hands a hit straight to the source's ASGI handler
(:meth:`~pesabridge.sources.callback.CallbackEndpoint.asgi`). The handler runs the whole
chain (path token, allow-list, basic auth, size limit, signature, quarantine, group
commit) exactly as it does behind the router; everything else, including a callback URL
with a wrong path token, goes through Starlette as before, so the app's routes, mounts
and OpenAPI document are unchanged.

A path token is part of the dict key. Looking a path up compares hashes first and the
string only on an equal hash, so the time taken tells nothing about a token's prefix.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

Handler = Callable[[Scope, Receive, Send], Any]


def fast_table(sources: Sequence[object]) -> dict[tuple[str, str], Handler]:
    """``(method, path) -> handler`` from every source that offers ``fast_routes()``."""
    table: dict[tuple[str, str], Handler] = {}
    for source in sources:
        offer = getattr(source, "fast_routes", None)
        if offer is not None:
            table.update(offer())
    return table


class CallbackApp(Starlette):
    """A Starlette app that answers the callback URLs in ``fast`` before routing."""

    def __init__(self, *, fast: Mapping[tuple[str, str], Handler], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.fast = dict(fast)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope.get("root_path"):
            handler = self.fast.get((scope["method"], scope["path"]))
            if handler is not None:
                scope["app"] = self
                await handler(scope, receive, send)
                return
        await super().__call__(scope, receive, send)
