"""OAuth2 client credentials for the HTTP sink: one token per sink, shared by its requests."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp

from ..errors import DeliveryError
from .http_config import RESPONSE_EXCERPT, OAuth2Auth


class OAuth2Token:
    """A client-credentials token, fetched once and shared, refreshed before expiry."""

    def __init__(self, config: OAuth2Auth) -> None:
        self.config = config
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()

    async def get(self, session: aiohttp.ClientSession, *, stale: str | None = None) -> str:
        """The current token; a new one when it is near expiry or equals ``stale``."""
        async with self._lock:
            fresh = self._token is not None and time.monotonic() < self._expires
            if fresh and self._token != stale:
                assert self._token is not None
                return self._token
            self._token = await self._fetch(session)
            return self._token

    async def _fetch(self, session: aiohttp.ClientSession) -> str:
        c = self.config
        form = {"grant_type": "client_credentials"}
        if c.scope:
            form["scope"] = c.scope
        if c.audience:
            form["audience"] = c.audience
        headers = {}
        if c.client_auth == "basic":
            secret = c.client_secret.get_secret_value()
            headers["Authorization"] = aiohttp.encode_basic_auth(c.client_id, secret)
        else:
            form.update(client_id=c.client_id, client_secret=c.client_secret.get_secret_value())
        try:
            async with session.post(str(c.token_url), data=form, headers=headers) as response:
                text = await response.text(errors="replace")
                if response.status != 200:
                    raise DeliveryError(
                        f"OAuth2 token endpoint answered {response.status}",
                        retryable=True,
                        response=text[:RESPONSE_EXCERPT],
                    )
                payload = json.loads(text)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            if isinstance(exc, DeliveryError):
                raise
            raise DeliveryError(f"OAuth2 token request failed: {exc}", retryable=True) from None
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not isinstance(token, str):
            raise DeliveryError("OAuth2 token endpoint sent no access_token", retryable=True)
        expires_in = payload.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float | str) else 3600.0
        # Refresh ``refresh_margin`` before expiry, but use a short-lived token for at
        # least half its life rather than fetching one per request.
        self._expires = time.monotonic() + max(lifetime - c.refresh_margin, lifetime / 2)
        return token
