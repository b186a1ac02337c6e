"""Asking MTN MoMo for the authoritative state of a request-to-pay.

MTN signs nothing and calls back once, so an ``mtn-momo`` source can be told to confirm
each callback with the collection API's status endpoint::

    GET {base_url}/collection/v1_0/requesttopay/{referenceId}
    Authorization: Bearer <token>         (from POST {base_url}/collection/token/,
    X-Target-Environment: <environment>    basic auth with the API user and key)
    Ocp-Apim-Subscription-Key: <key>

The answer has the shape of the callback itself, so it is read by the same parser.
Tokens are cached until shortly before ``expires_in`` runs out and fetched again, once,
when the endpoint answers 401. A static ``bearer_token`` can be configured instead.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import aiohttp
import structlog
from pydantic import Field, SecretStr, model_validator

from ...config import Strict

log = structlog.get_logger("pesabridge.sources.mtn")

TOKEN_MARGIN = 60.0
"""Seconds before a token's expiry at which a new one is fetched."""


class MtnConfirmConfig(Strict):
    """``confirm:`` of an ``mtn-momo`` source: check each callback with MTN's status API."""

    base_url: str = Field(pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    """``https://sandbox.momodeveloper.mtn.com`` or the production host MTN gave you."""
    subscription_key: SecretStr
    """The collection product's ``Ocp-Apim-Subscription-Key``."""
    api_user: str | None = Field(default=None, min_length=1)
    api_key: SecretStr | None = None
    bearer_token: SecretStr | None = None
    """A token obtained elsewhere, instead of ``api_user`` and ``api_key``."""
    target_environment: str = Field(default="sandbox", pattern=r"^[A-Za-z0-9_-]+$")
    timeout: float = Field(default=5.0, gt=0, le=30)
    """Seconds for each call to MTN (token and status)."""
    on_unavailable: Literal["quarantine", "record"] = "quarantine"
    """MTN did not answer: keep the callback for a person (default), or record it as sent."""

    @model_validator(mode="after")
    def _credentials(self) -> MtnConfirmConfig:
        has_pair = self.api_user is not None and self.api_key is not None
        if (self.api_user is None) != (self.api_key is None):
            raise ValueError("api_user and api_key go together")
        if has_pair == (self.bearer_token is not None):
            raise ValueError("give either api_user and api_key, or bearer_token")
        return self


@dataclass(frozen=True, slots=True)
class StatusAnswer:
    """What MTN said about one reference id."""

    kind: Literal["found", "unknown", "unavailable"]
    body: bytes = b""
    """``found``: the status document as received."""
    reason: str = ""
    """``unknown`` / ``unavailable``: why, for logs and the quarantine."""


def reference_id(value: str | None) -> str | None:
    """``value`` as MTN's reference id (a UUID), or None when it is not one."""
    if not value:
        return None
    try:
        return str(uuid.UUID(value.strip()))
    except ValueError:
        return None


class MtnStatusClient:
    """Calls the status endpoint; one per source, sharing one HTTP session."""

    def __init__(self, config: MtnConfirmConfig) -> None:
        self.config = config
        self._base = config.base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None
        self._token: str | None = None
        self._expires = 0.0
        self._token_lock = asyncio.Lock()

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(total=self.config.timeout)
            self._session = aiohttp.ClientSession(timeout=timeout)
        return self._session

    async def status(self, reference: str) -> StatusAnswer:
        """The request-to-pay's state; never raises for MTN's or the network's failures."""
        url = f"{self._base}/collection/v1_0/requesttopay/{reference}"
        try:
            for attempt in range(2):
                headers = {
                    "Authorization": f"Bearer {await self._bearer(renew=attempt > 0)}",
                    "X-Target-Environment": self.config.target_environment,
                    "Ocp-Apim-Subscription-Key": self.config.subscription_key.get_secret_value(),
                }
                async with self._client().get(url, headers=headers) as reply:
                    body = await reply.read()
                    if reply.status == 401 and attempt == 0 and self.config.bearer_token is None:
                        continue  # the token expired or was revoked early: one fresh one
                    if reply.status == 200:
                        return StatusAnswer("found", body)
                    if reply.status == 404:
                        return StatusAnswer("unknown", reason=f"MTN does not know {reference}")
                    return StatusAnswer("unavailable", reason=f"MTN answered HTTP {reply.status}")
        except TimeoutError:
            return StatusAnswer("unavailable", reason=f"no answer within {self.config.timeout} s")
        except (aiohttp.ClientError, TokenError, ValueError) as exc:
            return StatusAnswer("unavailable", reason=str(exc) or type(exc).__name__)
        raise AssertionError("unreachable")

    async def _bearer(self, *, renew: bool) -> str:
        if self.config.bearer_token is not None:
            return self.config.bearer_token.get_secret_value()
        async with self._token_lock:
            if renew or self._token is None or time.monotonic() >= self._expires:
                self._token, lifetime = await self._fetch_token()
                # a token shorter-lived than twice the margin is used for half its life
                margin = min(TOKEN_MARGIN, lifetime / 2)
                self._expires = time.monotonic() + lifetime - margin
            return self._token

    async def _fetch_token(self) -> tuple[str, float]:
        config = self.config
        assert config.api_user is not None
        assert config.api_key is not None
        headers = {
            "Authorization": aiohttp.encode_basic_auth(
                config.api_user, config.api_key.get_secret_value()
            ),
            "Ocp-Apim-Subscription-Key": config.subscription_key.get_secret_value(),
        }
        async with self._client().post(f"{self._base}/collection/token/", headers=headers) as reply:
            if reply.status != 200:
                raise TokenError(f"MTN refused a token: HTTP {reply.status}")
            answer: Any = await reply.json(content_type=None)
        token = answer.get("access_token") if isinstance(answer, dict) else None
        if not isinstance(token, str) or not token:
            raise TokenError("MTN's token answer has no access_token")
        lifetime = answer.get("expires_in", 3600)
        return token, float(lifetime) if isinstance(lifetime, int | float) else 3600.0

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


class TokenError(Exception):
    """No token could be had from MTN."""
