"""Safaricom Daraja C2B: the confirmation and validation URLs.

A confirmation is answered ``{"ResultCode":0,"ResultDesc":"Success"}`` only after the
transaction and its outbox rows are committed; a repeated ``TransID`` is acknowledged and
stored once. A validation request is a question, never a payment: it is answered and
never posted.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from typing import ClassVar, Literal

import structlog
from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from ..config import ComponentConfig
from ..formats.base import Reject
from ..formats.daraja_c2b import parse_c2b_payload
from ..metrics import CALLBACKS, RECORDED, REJECTED
from ..store import Sighting, utcnow
from ..store import files as file_ledger
from .base import SourceContext

log = structlog.get_logger("pesabridge.sources.daraja")

CONFIRMED = {"ResultCode": 0, "ResultDesc": "Success"}
ACCEPTED = {"ResultCode": "0", "ResultDesc": "Accepted"}
# Daraja's documented rejection code for "other error".
REJECTED_OTHER = {"ResultCode": "C2B00016", "ResultDesc": "Rejected"}
MAX_BODY = 64 * 1024


class DarajaC2BConfig(ComponentConfig):
    """``type: daraja-c2b``: Daraja posts to ``<path>/confirmation`` and ``<path>/validation``."""

    type: Literal["daraja-c2b"] = "daraja-c2b"
    path: str = Field(default="/daraja/c2b", pattern=r"^/[A-Za-z0-9/_.-]*$")


class DarajaC2BSource:
    """The C2B callback endpoint."""

    Config: ClassVar[type[ComponentConfig]] = DarajaC2BConfig

    def __init__(self, config: DarajaC2BConfig, context: SourceContext) -> None:
        self.config = config
        self.name = config.name
        self.context = context
        self._route = context.routing.router_for(self.name)
        self._sighting = Sighting(kind="callback", origin="callback")

    def routes(self) -> Sequence[BaseRoute]:
        base = self.config.path.rstrip("/")
        return [
            Route(f"{base}/confirmation", self.confirmation, methods=["POST"]),
            Route(f"{base}/validation", self.validation, methods=["POST"]),
        ]

    async def _read(self, request: Request) -> tuple[bytes, str]:
        request_id = request.headers.get("x-request-id") or uuid.uuid4().hex
        body = await request.body()
        return body[: MAX_BODY + 1], f"{self.name}:{request_id}"

    async def confirmation(self, request: Request) -> JSONResponse:
        body, source = await self._read(request)
        parsed = (
            parse_c2b_payload(body, source)
            if len(body) <= MAX_BODY
            else Reject(source, None, None, f"body larger than {MAX_BODY} bytes", body[:MAX_BODY])
        )
        if isinstance(parsed, Reject):
            await asyncio.to_thread(self._quarantine, parsed)
            CALLBACKS.labels(self.name, "rejected").inc()
            return JSONResponse({"ResultCode": 1, "ResultDesc": f"Rejected: {parsed}"}, 400)
        result = await asyncio.to_thread(
            self.context.store.record, [parsed], self._sighting, self._route
        )
        outcome = "new" if result.new else ("conflicting" if result.conflicting else "known")
        RECORDED.labels(self.name, outcome).inc()
        CALLBACKS.labels(self.name, "confirmed").inc()
        log.info(
            "c2b confirmation",
            source=self.name,
            outcome=outcome,
            transaction=parsed.transaction.describe(),
        )
        return JSONResponse(CONFIRMED)

    async def validation(self, request: Request) -> JSONResponse:
        body, source = await self._read(request)
        parsed = parse_c2b_payload(body, source)
        if isinstance(parsed, Reject):
            CALLBACKS.labels(self.name, "validation-rejected").inc()
            log.warning("c2b validation refused", source=self.name, reason=str(parsed))
            return JSONResponse(REJECTED_OTHER)
        CALLBACKS.labels(self.name, "validation-accepted").inc()
        return JSONResponse(ACCEPTED)

    def _quarantine(self, reject: Reject) -> None:
        REJECTED.labels(self.name).inc()
        log.warning("c2b confirmation rejected", source=self.name, reason=str(reject))
        with self.context.store.write() as conn:
            file_ledger.add_rejects(conn, [reject], None, utcnow())
