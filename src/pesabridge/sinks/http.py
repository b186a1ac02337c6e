"""HTTP back office: one request per transaction, carrying an ``Idempotency-Key``.

The body is any message encoder's output (canonical JSON by default), its media type the
encoder's. 2xx is delivered; 409 (the back office already has this key) is delivered too.
A connect failure never reached the server and is retried; a read timeout or a connection
dropped after sending is an *unknown outcome*: retried with the same idempotency key, and
flagged on the attempt. 408, 425, 429 and 5xx are retried (``Retry-After`` honoured); any
other 4xx will never succeed and is dead-lettered at once with the response kept.

Authentication: basic, bearer, an API-key header, OAuth2 client credentials (token cached,
refreshed before it expires and once on a 401), mutual TLS. Requests can be signed per
Standard Webhooks (``webhook-id``, ``webhook-timestamp``, ``webhook-signature``).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import ssl
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

import aiohttp
from aiohttp.helpers import parse_mimetype

from ..config import ComponentConfig
from ..encoders.base import MessageContext
from ..encoders.registry import get_encoder
from ..errors import DeliveryError
from ..store import Claimed
from .base import Delivered
from .http_config import (
    RESPONSE_EXCERPT,
    ApiKeyAuth,
    BasicAuth,
    BearerAuth,
    HttpSinkConfig,
    OAuth2Auth,
)
from .http_oauth import OAuth2Token
from .http_signing import webhook_key, webhook_signature

RETRYABLE_STATUSES = frozenset({408, 425, 429})


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


def excerpt(body: bytes, content_type: str | None) -> str:
    """The start of an answer as text (at most ``RESPONSE_EXCERPT`` characters), bad bytes
    replaced, decoded as aiohttp's ``response.text()`` would: by the declared charset,
    else (none, or one Python does not know) UTF-8, aiohttp's choice for JSON and its
    default otherwise. The media type is parsed only when it names a charset."""
    charset = "utf-8"
    if content_type is not None and "charset" in content_type.lower():
        charset = parse_mimetype(content_type.lower()).parameters.get("charset") or charset
    try:
        return body.decode(charset, "replace")[:RESPONSE_EXCERPT]
    except (LookupError, ValueError):  # an unknown (or malformed) charset name
        return body.decode("utf-8", "replace")[:RESPONSE_EXCERPT]


def extract(document: Any, path: str) -> str | None:
    """The value at a JSON pointer or dotted path, as text; None when absent."""
    if path.startswith("/"):
        parts = [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]
    else:
        parts = path.split(".")
    value = document
    for part in parts:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)


class TokenBucket:
    """Waits so that acquisitions average ``rate`` per second with bursts of ``burst``."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.updated = time.monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = time.monotonic()
                self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
                self.updated = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return
                await asyncio.sleep((1 - self.tokens) / self.rate)


class PreparedRequest:
    """One delivery's request, built ahead of sending (see :meth:`HttpSink.prepare`)."""

    __slots__ = ("body", "headers", "key", "summary")

    def __init__(self, key: str, body: bytes, headers: dict[str, str], summary: str) -> None:
        self.key = key
        self.body = body
        self.headers = headers
        """This request's own copy: signing and OAuth2 add to it when it is sent."""
        self.summary = summary


class HttpSink:
    """Posts each transaction, encoded, to a back-office HTTP API."""

    Config: ClassVar[type[ComponentConfig]] = HttpSinkConfig

    def __init__(self, config: HttpSinkConfig) -> None:
        self.config = config
        self.name = config.name
        self.encoder = get_encoder(config.encoder, config.encoder_options)
        self.media_type: str = self.encoder.media_type
        self._session: aiohttp.ClientSession | None = None
        self._limit = asyncio.Semaphore(config.concurrency)
        self._bucket = (
            TokenBucket(config.rate_limit.per_second, config.rate_limit.burst)
            if config.rate_limit
            else None
        )
        self._token = OAuth2Token(config.auth) if isinstance(config.auth, OAuth2Auth) else None
        self._keys = (
            [webhook_key(s.get_secret_value()) for s in config.signing.secrets]
            if config.signing
            else []
        )
        self._static = self._static_headers()
        self._url = str(config.url)

    def _static_headers(self) -> dict[str, str]:
        headers = {k: v.get_secret_value() for k, v in self.config.headers.items()}
        auth = self.config.auth
        if isinstance(auth, BasicAuth):
            headers["Authorization"] = aiohttp.encode_basic_auth(
                auth.username, auth.password.get_secret_value()
            )
        elif isinstance(auth, BearerAuth):
            headers["Authorization"] = f"Bearer {auth.token.get_secret_value()}"
        elif isinstance(auth, ApiKeyAuth):
            headers[auth.header] = auth.key.get_secret_value()
        headers.update({"Content-Type": self.media_type, "User-Agent": "pesabridge"})
        return headers

    def _ssl(self) -> ssl.SSLContext | None:
        tls = self.config.tls
        if tls is None:
            return None
        context = ssl.create_default_context(cafile=str(tls.ca) if tls.ca else None)
        if tls.cert is not None:
            context.load_cert_chain(str(tls.cert), str(tls.key) if tls.key else None)
        return context

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            timeout = aiohttp.ClientTimeout(
                total=None,
                sock_connect=self.config.timeout.connect,
                sock_read=self.config.timeout.read,
            )
            ssl_context = self._ssl()
            connector = aiohttp.TCPConnector(
                limit=self.config.concurrency,
                ssl=ssl_context if ssl_context is not None else True,
            )
            self._session = aiohttp.ClientSession(timeout=timeout, connector=connector)
        return self._session

    @property
    def concurrency(self) -> int:
        """Requests in flight at most (the worker sizes its senders by it)."""
        return self.config.concurrency

    def encode(self, claimed: Claimed, key: str | None = None) -> bytes:
        """The request body for one delivery (``key``: its idempotency key, if known)."""
        context = MessageContext(idempotency_key=key or claimed.idempotency_key, sink=self.name)
        body: bytes = self.encoder.encode(claimed.transaction, context)
        return body

    def summary(self, body: bytes) -> str:
        """What was sent, for the attempt log: no header values, no body."""
        digest = hashlib.sha256(body).hexdigest()[:16]
        return (
            f"{self.config.method} {self._url} {self.media_type} {len(body)} bytes sha256:{digest}"
        )

    def prepare(self, batch: Sequence[Claimed]) -> list[PreparedRequest | None]:
        """Each delivery's request (body, headers, summary), built for a whole claimed batch
        before any is sent: the worker calls this once per claim, so the encoder runs in
        one tight loop instead of between HTTP exchanges, where it costs about twice as
        much CPU (the measurement is in bench/README.md). None for a transaction that
        cannot be encoded: :meth:`deliver` says why."""
        prepared: list[PreparedRequest | None] = []
        for claimed in batch:
            try:
                prepared.append(self._request(claimed))
            except DeliveryError:
                prepared.append(None)
        return prepared

    def _request(self, claimed: Claimed) -> PreparedRequest:
        key = claimed.idempotency_key  # a sha256: derived once per delivery
        try:
            body = self.encode(claimed, key)
        except ValueError as exc:  # EncodeError: this transaction can never be encoded
            raise DeliveryError(f"cannot encode: {exc}", retryable=False) from None
        headers = {**self._static, "Idempotency-Key": key}
        return PreparedRequest(key, body, headers, self.summary(body))

    async def deliver(self, claimed: Claimed, prepared: object = None) -> Delivered:
        """Send one transaction; raise :class:`DeliveryError` on failure.

        ``prepared``: what :meth:`prepare` built for it, if anything (else it is built now).
        """
        request = prepared if isinstance(prepared, PreparedRequest) else self._request(claimed)
        key, body, headers, summary = request.key, request.body, request.headers, request.summary
        if self._keys:
            # Signed when sent, not when prepared: the timestamp says when it left.
            timestamp = int(time.time())
            headers["webhook-id"] = key
            headers["webhook-timestamp"] = str(timestamp)
            headers["webhook-signature"] = webhook_signature(self._keys, key, timestamp, body)
        async with self._limit:
            if self._bucket is not None:
                await self._bucket.acquire()
            try:
                status, text, retry_after = await self._send(body, headers)
                if status == 401 and self._token is not None:
                    # The token may have been revoked early: fetch a new one, once.
                    stale = headers["Authorization"].removeprefix("Bearer ")
                    status, text, retry_after = await self._send(body, headers, stale=stale)
            except DeliveryError as exc:
                exc.request_summary = summary
                raise
            except aiohttp.ConnectionTimeoutError:
                raise DeliveryError(
                    "connection failed: connect timed out (never reached the back office)",
                    retryable=True,
                    request_summary=summary,
                ) from None
            except aiohttp.ClientConnectorError as exc:
                raise DeliveryError(
                    f"connection failed (never reached the back office): {exc}",
                    retryable=True,
                    request_summary=summary,
                ) from None
            except TimeoutError:
                raise DeliveryError(
                    "read timed out waiting for the back office (outcome unknown)",
                    retryable=True,
                    unknown_outcome=True,
                    request_summary=summary,
                ) from None
            except aiohttp.ClientError as exc:
                # Dropped or reset after the request may have been sent.
                raise DeliveryError(
                    f"connection lost (outcome unknown): {type(exc).__name__}: {exc}",
                    retryable=True,
                    unknown_outcome=True,
                    request_summary=summary,
                ) from None
        return self._classify(status, text, retry_after, summary)

    async def _send(
        self, body: bytes, headers: dict[str, str], *, stale: str | None = None
    ) -> tuple[int, str, str | None]:
        session = self._client()
        if self._token is not None:
            headers["Authorization"] = "Bearer " + await self._token.get(session, stale=stale)
        async with session.request(
            self.config.method, self._url, data=body, headers=headers
        ) as response:
            raw = await response.read()
            text = excerpt(raw, response.headers.get("Content-Type"))
            return response.status, text, response.headers.get("Retry-After")

    def _document_id(self, text: str) -> str | None:
        if self.config.response is None:
            return None
        try:
            document = json.loads(text)
        except ValueError:
            return None
        return extract(document, self.config.response.document_id)

    def _classify(
        self, status: int, text: str, retry_after_header: str | None, summary: str
    ) -> Delivered:
        if 200 <= status < 300:
            return Delivered(
                status_code=status,
                response=text,
                document_id=self._document_id(text),
                request_summary=summary,
            )
        if status == 409:
            return Delivered(
                status_code=status,
                response=text,
                note="409: the back office already has this idempotency key",
                document_id=self._document_id(text),
                request_summary=summary,
            )
        retry_after = retry_after_seconds(retry_after_header)
        if status >= 500 or status in RETRYABLE_STATUSES:
            raise DeliveryError(
                f"HTTP {status}",
                retryable=True,
                retry_after=retry_after,
                status=status,
                response=text,
                request_summary=summary,
            )
        raise DeliveryError(
            f"HTTP {status}: the back office refused it",
            retryable=False,
            status=status,
            response=text,
            request_summary=summary,
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
