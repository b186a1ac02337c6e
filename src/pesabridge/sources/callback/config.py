"""What configures a callback endpoint: the provider's fixed facts and the operator's section."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pydantic import Field, SecretStr, field_validator

from ...config import ComponentConfig, Strict
from . import security
from .answers import Answers
from .signatures import Verifier


@dataclass(frozen=True, slots=True)
class Provider:
    """The fixed facts of one provider's callback: what a config cannot change."""

    format: str
    answers: Answers
    verifier: Verifier | None = None
    signature_required: bool = False
    """Refuse unsigned bodies even when no key is configured (K2, legacy Kopo Kopo)."""
    summary: str = ""
    content_types: tuple[str, ...] = ("application/json",)
    extra: dict[str, Any] = field(default_factory=dict)


class BasicAuth(Strict):
    """HTTP basic credentials the provider is configured to send."""

    username: str = Field(min_length=1)
    password: SecretStr


class CallbackConfig(ComponentConfig):
    """What every callback source's section may say (see ``docs/sources/callbacks.md``)."""

    path: str = Field(pattern=r"^/[A-Za-z0-9/_.-]*$")
    account: str | None = Field(default=None, max_length=64)
    """The short code, till or wallet to record when the payload carries none."""
    max_body: int = Field(default=64 * 1024, ge=256, le=16 * 1024 * 1024)
    quarantine_max_bytes: int = Field(default=64 * 1024, ge=0, le=16 * 1024 * 1024)
    allow_ips: list[str] | None = None
    """CIDR ranges (``@safaricom`` for Safaricom's list); absent: every address."""
    trusted_proxies: list[str] = []
    path_token: SecretStr | None = None
    basic_auth: BasicAuth | None = None
    signing_keys: list[SecretStr] = []
    """Keys the provider signs with; several during a rotation."""

    @field_validator("allow_ips", "trusted_proxies")
    @classmethod
    def _cidrs(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            security.networks(value)  # raises with the bad entry named
        return value

    @field_validator("path_token")
    @classmethod
    def _token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            secret = value.get_secret_value()
            if len(secret) < 16 or not all(c.isalnum() or c in "-_" for c in secret):
                raise ValueError("must be at least 16 characters of A-Z, a-z, 0-9, - and _")
        return value
