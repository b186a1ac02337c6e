"""HTTP back office: POST each transaction as JSON with an ``Idempotency-Key``.

2xx is delivered; 409 (the back office already has this key) is delivered too. Timeouts,
connection errors, 408, 429 and 5xx are retried (``Retry-After`` honoured); any other 4xx
will never succeed and is dead-lettered at once with the response kept.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import ClassVar, Literal

import aiohttp
from pydantic import AnyHttpUrl, Field, SecretStr

from ..config import ComponentConfig, Strict
from ..encoders import canonical_json
from ..errors import DeliveryError
from ..store import Claimed
from .base import Delivered

RESPONSE_EXCERPT = 2000
RETRYABLE_STATUSES = frozenset({408, 425, 429})


class Timeouts(Strict):
    connect: float = Field(default=5.0, gt=0)
    read: float = Field(default=30.0, gt=0)


class HttpSinkConfig(ComponentConfig):
    """``type: http``."""

    type: Literal["http"] = "http"
    url: AnyHttpUrl
    method: Literal["POST", "PUT"] = "POST"
    headers: dict[str, SecretStr] = {}
    """Sent with every request; values may be secrets (``${ERP_TOKEN}``), never logged."""
    timeout: Timeouts = Timeouts()
    concurrency: int = Field(default=8, ge=1, le=512)
    max_attempts: int = Field(default=12, ge=1)
    backoff_base: float = Field(default=2.0, gt=0)
    """Seconds before the first retry; doubles each attempt (with jitter)."""
    backoff_cap: float = Field(default=3600.0, gt=0)


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """A ``Retry-After`` header (delay seconds or an HTTP date) in seconds, if readable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        moment = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


class HttpSink:
    """Posts canonical JSON to a back-office HTTP API."""

    Config: ClassVar[type[ComponentConfig]] = HttpSinkConfig

    def __init__(self, config: HttpSinkConfig) -> None:
        self.config = config
        self.name = config.name
        self._session: aiohttp.ClientSession | None = None
        self._limit = asyncio.Semaphore(config.concurrency)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(
                total=None,
                sock_connect=self.config.timeout.connect,
                sock_read=self.config.timeout.read,
            )
            connector = aiohttp.TCPConnector(limit=self.config.concurrency)
            self._session = aiohttp.ClientSession(timeout=timeout, connector=connector)
        return self._session

    async def deliver(self, claimed: Claimed) -> Delivered:
        """Send one transaction; raise :class:`DeliveryError` on failure."""
        body = canonical_json(claimed.transaction, idempotency_key=claimed.idempotency_key)
        headers = {k: v.get_secret_value() for k, v in self.config.headers.items()}
        headers.update(
            {
                "Content-Type": "application/json",
                "Idempotency-Key": claimed.idempotency_key,
                "User-Agent": "pesabridge",
            }
        )
        async with self._limit:
            try:
                async with self._client().request(
                    self.config.method, str(self.config.url), data=body, headers=headers
                ) as response:
                    text = (await response.text(errors="replace"))[:RESPONSE_EXCERPT]
                    return self._classify(
                        response.status, text, response.headers.get("Retry-After")
                    )
            except TimeoutError:
                # The request may have reached the back office: an unknown outcome, retried
                # with the same idempotency key so a second arrival is harmless.
                raise DeliveryError(
                    "timed out waiting for the back office (outcome unknown)", retryable=True
                ) from None
            except aiohttp.ClientConnectionError as exc:
                raise DeliveryError(f"connection failed: {exc}", retryable=True) from None
            except aiohttp.ClientError as exc:
                raise DeliveryError(f"HTTP error: {exc}", retryable=True) from None

    def _classify(self, status: int, text: str, retry_after_header: str | None) -> Delivered:
        if 200 <= status < 300:
            return Delivered(status_code=status, response=text)
        if status == 409:
            return Delivered(
                status_code=status,
                response=text,
                note="409: the back office already has this idempotency key",
            )
        retry_after = retry_after_seconds(retry_after_header)
        if status >= 500 or status in RETRYABLE_STATUSES:
            raise DeliveryError(
                f"HTTP {status}",
                retryable=True,
                retry_after=retry_after,
                status=status,
                response=text,
            )
        raise DeliveryError(
            f"HTTP {status}: the back office refused it",
            retryable=False,
            status=status,
            response=text,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
