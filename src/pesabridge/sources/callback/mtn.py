"""MTN MoMo request-to-pay callbacks, optionally confirmed with MTN's status endpoint.

Without ``confirm`` a callback is recorded as sent: ``SUCCESSFUL`` a payment, ``FAILED``
a failed attempt, ``PENDING`` nothing. With ``confirm`` (see :mod:`.mtn_status`) each
callback's state is asked of MTN, and MTN's answer is what is recorded:

- the callback must say which request it reports: ``?referenceId=`` on the callback URL
  (put the ``X-Reference-Id`` of the request-to-pay into its ``X-Callback-Url``), or an
  ``X-Reference-Id`` header; a callback without one cannot be confirmed and is
  quarantined (400);
- MTN says ``SUCCESSFUL``: the transaction as MTN reports it is recorded, with MTN's
  answer as its evidence; the callback is kept as a second piece of evidence when it
  names the same ``financialTransactionId``, so any field on which it disagrees (an
  amount, a currency) becomes a discrepancy for a person, never an overwrite;
- MTN says ``FAILED`` (or ``REJECTED``, ``TIMEOUT``): a failed attempt, whatever the
  callback claimed;
- MTN says ``PENDING`` while the callback claims a final state, or MTN does not know the
  reference id (404): nothing is recorded and the callback is quarantined with the
  reason, answered 400;
- MTN cannot be reached (timeout, 5xx, no token): ``on_unavailable: quarantine`` (the
  default) keeps the callback for a person; ``record`` records it as sent.

A callback whose state differs from MTN's is logged as a mismatch and counted in
``pesabridge_callbacks_total{outcome="mtn-mismatch"}``.

Waiting for callbacks that never come (MTN sends each once) would need the reference ids
of the requests-to-pay, which the business's own system issues, not pesabridge:
reconciliation against the statement is what finds those.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar, Literal

import structlog
from pydantic import Field
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from ...config import ComponentConfig
from ...formats.base import FailedAttempt, Observation, ParseItem, Reject
from ...metrics import CALLBACKS
from ..base import SourceContext
from .endpoint import Answers, CallbackConfig, CallbackEndpoint, Provider, Refused, respond
from .mtn_status import MtnConfirmConfig, MtnStatusClient, reference_id

log = structlog.get_logger("pesabridge.sources.mtn")


def _plain_rejected(_reason: str) -> tuple[int, None]:
    return (400, None)


class MtnMomoConfig(CallbackConfig):
    """``type: mtn-momo``: MTN MoMo request-to-pay callbacks (PUT or POST, unsigned)."""

    type: Literal["mtn-momo"] = "mtn-momo"
    path: str = Field(default="/mtn/momo", pattern=r"^/[A-Za-z0-9/_.-]*$")
    confirm: MtnConfirmConfig | None = None
    """Confirm each callback with MTN's status endpoint (see the module docs)."""


def _state(items: Sequence[ParseItem]) -> str:
    """What a parsed body reports: SUCCESSFUL, FAILED or PENDING (nothing final)."""
    if any(isinstance(item, Observation) for item in items):
        return "SUCCESSFUL"
    if any(isinstance(item, FailedAttempt) for item in items):
        return "FAILED"
    return "PENDING"


class MtnMomoSource(CallbackEndpoint):
    """MTN: ``SUCCESSFUL`` is a payment, ``FAILED`` a failed attempt. Sent once only."""

    Config: ClassVar[type[ComponentConfig]] = MtnMomoConfig
    PROVIDER = Provider(
        "mtn-momo-callback",
        Answers(success=(200, None), rejected=_plain_rejected),
        summary="MTN MoMo callback",
    )
    config: MtnMomoConfig

    def __init__(self, config: MtnMomoConfig, context: SourceContext) -> None:
        super().__init__(config, context)
        self.status = None if config.confirm is None else MtnStatusClient(config.confirm)

    def routes(self) -> Sequence[BaseRoute]:
        # MTN's sandbox calls back with PUT, production with POST: take both.
        return [Route(self.url(), self.handle, methods=["POST", "PUT"])]

    async def handle(self, request: Request) -> Response:
        try:
            body, source = await self.receive(request)
        except Refused as refused:
            return respond(refused.answer, refused.headers)
        items = self.parse(body, source, request.headers.get("content-type"))
        if self.status is not None and not any(isinstance(i, Reject) for i in items):
            reference = request.query_params.get("referenceId") or request.headers.get(
                "x-reference-id"
            )
            items = await self.confirmed(items, body, source, reference)
        return await self.accept(items, body, source)

    async def confirmed(
        self, items: list[ParseItem], body: bytes, source: str, given: str | None
    ) -> list[ParseItem]:
        """What to record of a callback, once MTN has said what really happened."""
        assert self.status is not None
        assert self.config.confirm is not None
        reference = reference_id(given)
        if reference is None:
            why = (
                f"referenceId {given!r} is not a UUID"
                if given
                else "no referenceId to confirm with MTN (add ?referenceId= to the callback URL)"
            )
            return [self._refusal("mtn-unconfirmable", source, why, body)]
        answer = await self.status.status(reference)
        if answer.kind == "unknown":
            return [self._refusal("mtn-unknown", source, answer.reason, body)]
        if answer.kind == "unavailable":
            if self.config.confirm.on_unavailable == "record":
                CALLBACKS.labels(self.name, "mtn-unconfirmed").inc()
                log.warning(
                    "mtn callback recorded unconfirmed",
                    source=self.name,
                    reference=reference,
                    why=answer.reason,
                )
                return items
            return [
                self._refusal(
                    "mtn-unavailable", source, f"MTN status unavailable: {answer.reason}", body
                )
            ]
        truth = self.parse(answer.body, f"{source}:status", "application/json")
        if any(isinstance(i, Reject) for i in truth):
            return [self._refusal("mtn-unavailable", source, f"MTN status: {truth[0]}", body)]
        claimed, actual = _state(items), _state(truth)
        if claimed != actual:
            CALLBACKS.labels(self.name, "mtn-mismatch").inc()
            log.warning(
                "mtn callback differs from MTN's status",
                source=self.name,
                reference=reference,
                callback=claimed,
                mtn=actual,
            )
        if actual == "PENDING":
            if claimed == "PENDING":
                return []
            why = f"MTN reports {reference} as not final; the callback said {claimed}"
            return [self._refusal("mtn-pending", source, why, body)]
        CALLBACKS.labels(self.name, "mtn-confirmed").inc()
        if actual == "FAILED":
            return [i for i in truth if isinstance(i, FailedAttempt)]
        recorded = [i for i in truth if isinstance(i, Observation)]
        identities = {obs.transaction.identity for obs in recorded}
        # The callback's own account of the same transaction: its evidence, and any
        # disagreement a discrepancy (recorded after MTN's, so MTN's is what stands).
        witnesses = [
            i for i in items if isinstance(i, Observation) and i.transaction.identity in identities
        ]
        return [*recorded, *witnesses]

    def _refusal(self, outcome: str, source: str, reason: str, body: bytes) -> Reject:
        CALLBACKS.labels(self.name, outcome).inc()
        log.warning("mtn callback not confirmed", source=self.name, outcome=outcome, why=reason)
        return Reject(source, None, None, reason, body)

    async def aclose(self) -> None:
        if self.status is not None:
            await self.status.close()
