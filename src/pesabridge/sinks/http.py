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
import base64
import hashlib
import hmac
import json
import ssl
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import aiohttp
from aiohttp.helpers import parse_mimetype
from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator

from ..config import ComponentConfig, Strict
from ..encoders.base import MessageContext
from ..encoders.registry import get_encoder
from ..errors import DeliveryError
from ..store import Claimed
from .base import Delivered

RESPONSE_EXCERPT = 2000
RETRYABLE_STATUSES = frozenset({408, 425, 429})


class Timeouts(Strict):
    connect: float = Field(default=5.0, gt=0)
    """Seconds to open the connection (TLS included); a failure here never reached the
    back office."""
    read: float = Field(default=30.0, gt=0)
    """Seconds between bytes of the answer; a timeout here is an unknown outcome."""


class BasicAuth(Strict):
    type: Literal["basic"]
    username: str
    password: SecretStr


class BearerAuth(Strict):
    type: Literal["bearer"]
    token: SecretStr


class ApiKeyAuth(Strict):
    type: Literal["api_key"]
    header: str = "X-API-Key"
    key: SecretStr


class OAuth2Auth(Strict):
    """OAuth2 client credentials (RFC 6749 §4.4)."""

    type: Literal["oauth2"]
    token_url: AnyHttpUrl
    client_id: str
    client_secret: SecretStr
    scope: str | None = None
    audience: str | None = None
    client_auth: Literal["basic", "body"] = "basic"
    """How the client authenticates to the token endpoint: HTTP basic or form fields."""
    refresh_margin: float = Field(default=60.0, ge=0)
    """Seconds before expiry at which the token is refreshed (at the latest half-way
    through a shorter-lived token's life)."""


Auth = Annotated[BasicAuth | BearerAuth | ApiKeyAuth | OAuth2Auth, Field(discriminator="type")]


class TlsConfig(Strict):
    """Mutual TLS and a private CA."""

    cert: Path | None = None
    """Client certificate (PEM); with ``key`` for mutual TLS."""
    key: Path | None = None
    ca: Path | None = None
    """CA bundle the server's certificate is checked against (the system's when omitted)."""

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if self.key is not None and self.cert is None:
            raise ValueError("tls.key given without tls.cert")
        return self


class SigningConfig(Strict):
    """Standard Webhooks signatures (https://www.standardwebhooks.com)."""

    secrets: list[SecretStr] = Field(min_length=1)
    """``whsec_<base64>`` secrets; every one signs (several while rotating keys)."""

    @field_validator("secrets")
    @classmethod
    def _decodable(cls, value: list[SecretStr]) -> list[SecretStr]:
        for secret in value:
            webhook_key(secret.get_secret_value())
        return value


class RateLimit(Strict):
    """A token bucket: ``per_second`` on average, bursts of up to ``burst``."""

    per_second: float = Field(gt=0)
    burst: int = Field(default=1, ge=1)


class ResponseMapping(Strict):
    document_id: str
    """Where the back office's document id is in its JSON answer: a JSON pointer
    (``/data/id``) or a dotted path (``data.id``; list indexes as numbers)."""


class HttpSinkConfig(ComponentConfig):
    """``type: http``."""

    type: Literal["http"] = "http"
    url: AnyHttpUrl
    method: Literal["POST", "PUT"] = "POST"
    encoder: str = "json"
    encoder_options: dict[str, Any] = {}
    headers: dict[str, SecretStr] = {}
    """Sent with every request; values may be secrets (``${ERP_TOKEN}``), never logged."""
    auth: Auth | None = None
    tls: TlsConfig | None = None
    signing: SigningConfig | None = None
    timeout: Timeouts = Timeouts()
    concurrency: int = Field(default=8, ge=1, le=512)
    rate_limit: RateLimit | None = None
    response: ResponseMapping | None = None
    max_attempts: int = Field(default=12, ge=1)
    backoff_base: float = Field(default=2.0, gt=0)
    """Seconds before the first retry; doubles each attempt (with jitter)."""
    backoff_cap: float = Field(default=3600.0, gt=0)

    @model_validator(mode="after")
    def _encoder(self) -> HttpSinkConfig:
        encoder = get_encoder(self.encoder, self.encoder_options)
        if not callable(getattr(encoder, "encode", None)):
            raise ValueError(f"encoder {self.encoder!r} encodes statements, not one message")
        return self


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


def webhook_key(secret: str) -> bytes:
    """The HMAC key of a Standard Webhooks secret (``whsec_`` + base64)."""
    encoded = secret.removeprefix("whsec_")
    try:
        return base64.b64decode(encoded, validate=True)
    except ValueError:
        raise ValueError("a signing secret must be whsec_ followed by base64") from None


def webhook_signature(keys: list[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header: ``v1,<base64>`` per key, space-separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join(
        "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
        for key in keys
    )


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
