"""A sample back-office HTTP API: records postings by idempotency key.

A real HTTP server (aiohttp) on 127.0.0.1, used by ``pesabridge demo``, by the tests and
by integrators who want to see what pesabridge sends. It can be told to misbehave (fail,
throttle with ``Retry-After``, answer slowly, refuse, drop the connection before or after
posting), and it counts postings that arrive again under an idempotency key it already
accepted, so "exactly once" can be checked. It can demand a bearer token issued by its
own OAuth2 client-credentials endpoint (``/oauth/token``), answer 409 to a repeated key,
and serve HTTPS (with client certificates when the SSL context asks for them).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

Matcher = Callable[[dict[str, Any]], bool]


@dataclass
class Rule:
    """How to answer the next ``times`` postings that ``match`` (all when None)."""

    status: int = 200
    times: int = 1
    delay: float = 0.0
    retry_after: str | None = None
    body: str = ""
    match: Matcher | None = None
    drop: Literal["before", "after"] | None = None
    """Close the connection without answering: ``before`` posting (the request reached
    the server but nothing happened), or ``after`` (posted, the answer lost)."""


@dataclass
class BackOfficeState:
    """What the back office has seen."""

    postings: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Accepted postings by idempotency key: the back office's books."""
    requests: int = 0
    replays: int = 0
    """Requests carrying a key already accepted (answered 200, not posted again)."""
    missing_key: int = 0
    unauthorized: int = 0
    tokens_issued: int = 0
    seen: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    """Every request's headers and body, in arrival order."""


class BackOffice:
    """The server. ``await start()`` in a running loop, or use :class:`BackOfficeThread`."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, path: str = "/payments") -> None:
        self.host = host
        self.port = port
        self.path = path
        self.state = BackOfficeState()
        self.rules: list[Rule] = []
        self._runner: web.AppRunner | None = None
        self._lock = threading.Lock()
        self.conflict_on_replay = False
        """Answer 409 (instead of 200) to a key already accepted."""
        self.require_token = False
        """Demand ``Authorization: Bearer`` with a token from ``/oauth/token``."""
        self.oauth_clients: dict[str, str] = {}
        self.token_lifetime = 3600
        self.tokens: set[str] = set()
        self._token_numbers = itertools.count(1)
        self._tls = False

    @property
    def url(self) -> str:
        return f"{self.origin}{self.path}"

    @property
    def origin(self) -> str:
        return f"{'https' if self._tls else 'http'}://{self.host}:{self.port}"

    def revoke_tokens(self) -> None:
        """Forget every issued token (the next request with one is answered 401)."""
        with self._lock:
            self.tokens.clear()

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        client_id, secret = form.get("client_id"), form.get("client_secret")
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type"}, status=400)
        if not isinstance(client_id, str) or self.oauth_clients.get(client_id) != secret:
            return web.json_response({"error": "invalid_client"}, status=401)
        token = f"tok-{next(self._token_numbers)}"
        with self._lock:
            self.tokens.add(token)
            self.state.tokens_issued += 1
        return web.json_response(
            {"access_token": token, "token_type": "Bearer", "expires_in": self.token_lifetime}
        )

    def add_rule(self, rule: Rule) -> None:
        """Queue a behaviour; rules are tried in the order added."""
        with self._lock:
            self.rules.append(rule)

    def _next_rule(self, body: dict[str, Any]) -> Rule | None:
        with self._lock:
            for rule in self.rules:
                if rule.times > 0 and (rule.match is None or rule.match(body)):
                    rule.times -= 1
                    return rule
        return None

    async def _handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        with self._lock:
            self.state.seen.append((dict(request.headers), raw))
        if self.require_token:
            token = request.headers.get("Authorization", "").removeprefix("Bearer ")
            with self._lock:
                known = token in self.tokens
                self.state.unauthorized += not known
            if not known:
                return web.json_response({"error": "invalid_token"}, status=401)
        try:
            body = json.loads(raw)
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        key = request.headers.get("Idempotency-Key")
        with self._lock:
            self.state.requests += 1
            if key is None:
                self.state.missing_key += 1
        if key is None:
            return web.json_response({"error": "Idempotency-Key header required"}, status=400)
        rule = self._next_rule(body)
        if rule is not None:
            if rule.delay:
                await asyncio.sleep(rule.delay)
            if rule.drop is not None:
                if rule.drop == "after":
                    self._post(key, body)
                assert request.transport is not None
                request.transport.abort()
                raise asyncio.CancelledError  # nothing more to say on a dead connection
            if not 200 <= rule.status < 300:
                headers = {"Retry-After": rule.retry_after} if rule.retry_after else None
                return web.Response(
                    status=rule.status, text=rule.body or "refused", headers=headers
                )
        document, fresh = self._post(key, body)
        if not fresh:
            status = 409 if self.conflict_on_replay else 200
            return web.json_response({"status": "duplicate", "document": document}, status=status)
        return web.json_response({"status": "posted", "document": document}, status=201)

    def _post(self, key: str, body: dict[str, Any]) -> tuple[str, bool]:
        """Book a posting once per key: its document id, and whether it is new."""
        with self._lock:
            if key in self.state.postings:
                self.state.replays += 1
                return str(self.state.postings[key]["document"]), False
            document = f"DOC-{len(self.state.postings) + 1:06d}"
            self.state.postings[key] = {"document": document, "body": body}
            return document, True

    async def _summary(self, _request: web.Request) -> web.Response:
        with self._lock:
            return web.json_response(
                {
                    "postings": len(self.state.postings),
                    "requests": self.state.requests,
                    "replays": self.state.replays,
                }
            )

    async def start(self, ssl_context: ssl.SSLContext | None = None) -> None:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        app.router.add_get("/summary", self._summary)
        app.router.add_post("/oauth/token", self._token)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self._tls = ssl_context is not None
        site = web.TCPSite(self._runner, self.host, self.port, ssl_context=ssl_context)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


class BackOfficeThread:
    """A :class:`BackOffice` in its own thread and event loop, for synchronous code."""

    def __init__(self, **kwargs: Any) -> None:
        self.server = BackOffice(**kwargs)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)

    def __enter__(self) -> BackOffice:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self._loop).result(10)
        return self.server

    def __exit__(self, *_exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()
