"""The HTTP sink's configuration (``type: http``): URL, body encoder, auth, TLS, signing,
timeouts, pacing and what to read back from an answer. See ``docs/sinks/http.md``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator, model_validator

from ..config import ComponentConfig, Strict
from ..encoders.registry import get_encoder
from .http_signing import webhook_key

RESPONSE_EXCERPT = 2000


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
