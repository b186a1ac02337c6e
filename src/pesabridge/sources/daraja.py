"""Safaricom Daraja C2B: the confirmation and validation URLs.

A confirmation is answered ``{"ResultCode":0,"ResultDesc":"Success"}`` only after the
transaction and its outbox rows are committed; a repeated ``TransID`` is acknowledged and
stored once. A validation request is a question, never a payment: it is answered (accept
all, a rule on the account reference, or the back office's decision, see
:mod:`pesabridge.sources.callback.validation`) and never posted.

Everything else (allow-list, basic auth, path token, size limit, quarantine, group
commit) is the generic :class:`~pesabridge.sources.callback.CallbackEndpoint`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

import structlog
from pydantic import Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..config import ComponentConfig
from ..formats.base import Observation, Reject
from ..metrics import CALLBACKS
from .base import SourceContext
from .callback.endpoint import CallbackConfig, CallbackEndpoint, Provider, Refused, respond
from .callback.providers import DARAJA_ANSWERS, DARAJA_OK
from .callback.validation import ACCEPTED, ValidationConfig, Validator, rejected

log = structlog.get_logger("pesabridge.sources.daraja")

CONFIRMED = DARAJA_OK
# Daraja's documented rejection code for "other error".
REJECTED_OTHER = rejected("C2B00016")


class DarajaC2BConfig(CallbackConfig):
    """``type: daraja-c2b``: Daraja posts to ``<path>/confirmation`` and ``<path>/validation``."""

    type: Literal["daraja-c2b"] = "daraja-c2b"
    path: str = Field(default="/daraja/c2b", pattern=r"^/[A-Za-z0-9/_.-]*$")
    validation: ValidationConfig = ValidationConfig()


class DarajaC2BSource(CallbackEndpoint):
    """The C2B callback endpoint."""

    Config: ClassVar[type[ComponentConfig]] = DarajaC2BConfig
    PROVIDER = Provider("daraja-c2b", DARAJA_ANSWERS, summary="C2B confirmation")
    config: DarajaC2BConfig

    def __init__(self, config: DarajaC2BConfig, context: SourceContext) -> None:
        super().__init__(config, context)
        self.validator = Validator(config.validation, self.name)

    def routes(self) -> Sequence[BaseRoute]:
        return [
            Route(self.url("/confirmation"), self.handle, methods=["POST"]),
            Route(self.url("/validation"), self.validation, methods=["POST"]),
        ]

    def openapi(self) -> dict[str, Any]:
        return {
            self.url("/confirmation"): {"post": self._operation("C2B confirmation")},
            self.url("/validation"): {"post": self._operation("C2B validation")},
        }

    async def validation(self, request: Request) -> Response:
        try:
            body, source = await self.receive(request)
        except Refused as refused:
            return respond(refused.answer, refused.headers)
        items = self.parse(body, source, request.headers.get("content-type"))
        parsed = next((i for i in items if isinstance(i, Observation | Reject)), None)
        if not isinstance(parsed, Observation):
            CALLBACKS.labels(self.name, "validation-rejected").inc()
            log.warning("c2b validation refused", source=self.name, reason=str(parsed))
            return JSONResponse(REJECTED_OTHER)
        answer = await self.validator.decide(parsed.transaction, body)
        accepted = answer["ResultCode"] == ACCEPTED["ResultCode"]
        CALLBACKS.labels(
            self.name, "validation-accepted" if accepted else "validation-rejected"
        ).inc()
        log.info(
            "c2b validation",
            source=self.name,
            mode=self.config.validation.mode,
            answered=answer["ResultCode"],
        )
        return JSONResponse(answer)

    async def aclose(self) -> None:
        await self.validator.close()
