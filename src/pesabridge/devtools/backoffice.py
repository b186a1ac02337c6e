"""A sample back-office HTTP API: records postings by idempotency key.

A real HTTP server (aiohttp) on 127.0.0.1, used by ``pesabridge demo``, by the tests and
by integrators who want to see what pesabridge sends. It can be told to misbehave (fail,
throttle with ``Retry-After``, answer slowly, refuse), and it counts postings that arrive
again under an idempotency key it already accepted, so "exactly once" can be checked.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

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


@dataclass
class BackOfficeState:
    """What the back office has seen."""

    postings: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Accepted postings by idempotency key: the back office's books."""
    requests: int = 0
    replays: int = 0
    """Requests carrying a key already accepted (answered 200, not posted again)."""
    missing_key: int = 0


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

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

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
            if not 200 <= rule.status < 300:
                headers = {"Retry-After": rule.retry_after} if rule.retry_after else None
                return web.Response(
                    status=rule.status, text=rule.body or "refused", headers=headers
                )
        with self._lock:
            if key in self.state.postings:
                self.state.replays += 1
                document = self.state.postings[key]["document"]
                return web.json_response({"status": "duplicate", "document": document})
            document = f"DOC-{len(self.state.postings) + 1:06d}"
            self.state.postings[key] = {"document": document, "body": body}
        return web.json_response({"status": "posted", "document": document}, status=201)

    async def _summary(self, _request: web.Request) -> web.Response:
        with self._lock:
            return web.json_response(
                {
                    "postings": len(self.state.postings),
                    "requests": self.state.requests,
                    "replays": self.state.replays,
                }
            )

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(self.path, self._handle)
        app.router.add_get("/summary", self._summary)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
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
