"""A stand-in for MTN MoMo's collection API: the token and request-to-pay status endpoints.

A real HTTP server (aiohttp) on 127.0.0.1 answering the two calls an ``mtn-momo``
callback source makes to confirm a callback (see ``docs/sources/callbacks.md``):

- ``POST /collection/token/`` with HTTP basic auth (API user and API key) and the
  ``Ocp-Apim-Subscription-Key`` header: ``{"access_token", "token_type", "expires_in"}``;
- ``GET /collection/v1_0/requesttopay/{referenceId}`` with ``Authorization: Bearer``,
  ``X-Target-Environment`` and the subscription key: the request's state in the shape
  MoMo documents (``amount``, ``currency``, ``financialTransactionId``, ``externalId``,
  ``payer``, ``status``, ``reason``), or ``404 RESOURCE_NOT_FOUND``.

Tests and integrators register payments with :meth:`MtnStatusServer.add`, can make it
answer 500 or slowly, revoke its tokens, and read what it was asked::

    server = MtnStatusServer(subscription_key="sub", api_user=uid, api_key="key")
    await server.start()
    server.add("3f1c...", status="SUCCESSFUL", amount="100", financialTransactionId="1")
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass
class MtnStatusState:
    """What the stand-in was asked."""

    token_requests: int = 0
    status_requests: int = 0
    unauthorized: int = 0
    asked: list[str] = field(default_factory=list)
    """Reference ids asked about, in order."""
    headers: list[dict[str, str]] = field(default_factory=list)
    """The headers of each status request."""


class MtnStatusServer:
    """The server; ``await start()`` in a running loop, ``await stop()`` when done."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        subscription_key: str = "subscription-key",
        api_user: str = "6c8a3b1e-4b7e-4c5e-9d0f-7a1b2c3d4e5f",
        api_key: str = "api-key",
        target_environment: str = "sandbox",
        token_lifetime: int = 3600,
    ) -> None:
        self.host = host
        self.port = port
        self.subscription_key = subscription_key
        self.api_user = api_user
        self.api_key = api_key
        self.target_environment = target_environment
        self.token_lifetime = token_lifetime
        self.payments: dict[str, dict[str, Any]] = {}
        self.tokens: set[str] = set()
        self.state = MtnStatusState()
        self.fail_next = 0
        """Answer the next this many status requests with 500."""
        self.delay = 0.0
        """Seconds to wait before answering a status request."""
        self._numbers = itertools.count(1)
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """The base URL to configure as ``confirm.base_url``."""
        return f"http://{self.host}:{self.port}"

    def add(self, reference_id: str, **body: Any) -> dict[str, Any]:
        """Register (or replace) the state of the request-to-pay ``reference_id``."""
        document = {
            "amount": "100",
            "currency": "UGX",
            "externalId": "947354",
            "payer": {"partyIdType": "MSISDN", "partyId": "256772123456"},
            "payerMessage": "Payment",
            "payeeNote": "Thank you",
            "status": "SUCCESSFUL",
            **body,
        }
        if document["status"] == "SUCCESSFUL":
            document.setdefault("financialTransactionId", str(next(self._numbers) + 23503451))
        self.payments[reference_id] = document
        return document

    def revoke_tokens(self) -> None:
        """Forget every issued token: the next status request with one gets 401."""
        self.tokens.clear()

    def _subscribed(self, request: web.Request) -> bool:
        return request.headers.get("Ocp-Apim-Subscription-Key") == self.subscription_key

    async def _token(self, request: web.Request) -> web.Response:
        self.state.token_requests += 1
        expected = base64.b64encode(f"{self.api_user}:{self.api_key}".encode()).decode()
        if not self._subscribed(request) or request.headers.get("Authorization") != (
            f"Basic {expected}"
        ):
            self.state.unauthorized += 1
            return web.json_response(
                {"error": "login_failed", "error_description": "Access denied"}, status=401
            )
        token = secrets.token_urlsafe(24)
        self.tokens.add(token)
        return web.json_response(
            {"access_token": token, "token_type": "access_token", "expires_in": self.token_lifetime}
        )

    async def _status(self, request: web.Request) -> web.Response:
        self.state.status_requests += 1
        reference = request.match_info["reference"]
        self.state.asked.append(reference)
        self.state.headers.append(dict(request.headers))
        if self.delay:
            await asyncio.sleep(self.delay)
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not self._subscribed(request) or bearer not in self.tokens:
            self.state.unauthorized += 1
            return web.json_response(
                {"statusCode": 401, "message": "Access denied due to invalid token"}, status=401
            )
        if request.headers.get("X-Target-Environment") != self.target_environment:
            return web.json_response(
                {"code": "NOT_ALLOWED_TARGET_ENVIRONMENT", "message": "Wrong environment"},
                status=403,
            )
        if self.fail_next > 0:
            self.fail_next -= 1
            return web.json_response(
                {"code": "INTERNAL_PROCESSING_ERROR", "message": "Try later"}, status=500
            )
        document = self.payments.get(reference)
        if document is None:
            return web.json_response(
                {"code": "RESOURCE_NOT_FOUND", "message": "Requested resource was not found."},
                status=404,
            )
        return web.json_response(document)

    async def start(self) -> None:
        """Listen on ``host:port`` (port 0: a free one, then in ``self.port``)."""
        app = web.Application()
        app.router.add_post("/collection/token/", self._token)
        app.router.add_get("/collection/v1_0/requesttopay/{reference}", self._status)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
