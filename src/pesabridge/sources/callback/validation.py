"""Daraja C2B validation: accept all, check the account reference, or ask the back office.

Daraja waits about 8 seconds for a validation answer, then applies the short code's
default (complete or cancel). The back office is therefore asked with a deadline well
inside that (``timeout``, at most 7 s); when it is slow, or answers something that is
not an answer, ``on_timeout`` / ``on_error`` decide, and the decision is logged.

Answers: ``{"ResultCode": "0", "ResultDesc": "Accepted"}`` or a Daraja rejection code:
C2B00011 invalid MSISDN, C2B00012 invalid account number, C2B00013 invalid amount,
C2B00014 invalid KYC details, C2B00015 invalid short code, C2B00016 other error.
"""

from __future__ import annotations

import asyncio
import re
from typing import Any, Literal

import aiohttp
import structlog
from pydantic import Field, SecretStr, model_validator

from ...config import Strict
from ...model import Transaction

log = structlog.get_logger("pesabridge.sources.daraja")

ACCEPTED: dict[str, str] = {"ResultCode": "0", "ResultDesc": "Accepted"}
CODES = {
    "C2B00011": "Invalid MSISDN",
    "C2B00012": "Invalid Account Number",
    "C2B00013": "Invalid Amount",
    "C2B00014": "Invalid KYC Details",
    "C2B00015": "Invalid Shortcode",
    "C2B00016": "Other Error",
}
Code = Literal["C2B00011", "C2B00012", "C2B00013", "C2B00014", "C2B00015", "C2B00016"]


def rejected(code: str) -> dict[str, str]:
    return {"ResultCode": code, "ResultDesc": "Rejected"}


class ValidationConfig(Strict):
    """``validation:`` of a ``daraja-c2b`` source."""

    mode: Literal["accept", "rule", "backoffice"] = "accept"
    pattern: str | None = None
    """``rule``: the account reference (BillRefNumber, trimmed) must match this regex."""
    accounts: list[str] | None = None
    """``rule``: ... or be one of these."""
    ignore_case: bool = True
    reject_code: Code = "C2B00012"
    url: str | None = None
    """``backoffice``: POSTed the validation body as JSON; answers a Daraja ResultCode."""
    token: SecretStr | None = None
    """``backoffice``: sent as ``Authorization: Bearer``."""
    timeout: float = Field(default=3.0, gt=0, le=7.0)
    on_timeout: Literal["accept", "reject"] = "accept"
    on_error: Literal["accept", "reject"] = "accept"

    @model_validator(mode="after")
    def _complete(self) -> ValidationConfig:
        if self.mode == "rule" and self.pattern is None and self.accounts is None:
            raise ValueError("mode rule needs pattern or accounts")
        if self.mode == "backoffice" and not self.url:
            raise ValueError("mode backoffice needs url")
        if self.pattern is not None:
            try:
                re.compile(self.pattern)
            except re.error as exc:
                raise ValueError(f"pattern is not a regular expression: {exc}") from None
        return self


class Validator:
    """Decides a validation request."""

    def __init__(self, config: ValidationConfig, source: str) -> None:
        self.config = config
        self.source = source
        flags = re.IGNORECASE if config.ignore_case else 0
        self._pattern = re.compile(config.pattern, flags) if config.pattern else None
        fold = str.casefold if config.ignore_case else str
        self._fold = fold
        self._accounts = {fold(a.strip()) for a in config.accounts or []}
        self._session: aiohttp.ClientSession | None = None

    async def decide(self, txn: Transaction, body: bytes) -> dict[str, str]:
        config = self.config
        if config.mode == "accept":
            return ACCEPTED
        if config.mode == "rule":
            return ACCEPTED if self._matches(txn.reference or "") else rejected(config.reject_code)
        return await self._ask(body)

    def _matches(self, reference: str) -> bool:
        if self._pattern is not None and self._pattern.fullmatch(reference):
            return True
        return self._fold(reference) in self._accounts

    def _fallback(self, setting: str, why: str) -> dict[str, str]:
        answer = ACCEPTED if setting == "accept" else rejected(self.config.reject_code)
        log.warning(
            "c2b validation: back office did not decide",
            source=self.source,
            why=why,
            answered=answer["ResultCode"],
        )
        return answer

    async def _ask(self, body: bytes) -> dict[str, str]:
        config = self.config
        assert config.url is not None
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession()
        headers = {"Content-Type": "application/json"}
        if config.token is not None:
            headers["Authorization"] = f"Bearer {config.token.get_secret_value()}"
        try:
            async with asyncio.timeout(config.timeout):
                async with self._session.post(config.url, data=body, headers=headers) as reply:
                    if reply.status >= 300:
                        return self._fallback(config.on_error, f"HTTP {reply.status}")
                    answer: Any = await reply.json(content_type=None)
        except TimeoutError:
            return self._fallback(config.on_timeout, f"no answer within {config.timeout} s")
        except (aiohttp.ClientError, ValueError) as exc:
            return self._fallback(config.on_error, type(exc).__name__)
        code = str(answer.get("ResultCode")) if isinstance(answer, dict) else None
        if code == "0":
            return ACCEPTED
        if code in CODES:
            return rejected(code)
        return self._fallback(config.on_error, "answer without a known ResultCode")

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
