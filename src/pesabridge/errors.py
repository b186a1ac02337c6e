"""The exception hierarchy: every error pesabridge raises on purpose derives from one base."""

from __future__ import annotations


class PesabridgeError(Exception):
    """Base of every error raised on purpose by pesabridge."""


class InvalidValue(PesabridgeError, ValueError):
    """A value refused at construction: names the field and says what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


class ConfigError(PesabridgeError):
    """The configuration is wrong; each problem names its YAML path."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


class UnknownFormat(PesabridgeError, LookupError):
    """A format name that no parser or encoder is registered under."""


class StoreError(PesabridgeError):
    """The ledger could not do what was asked."""


class DeliveryError(PesabridgeError):
    """A sink failed to deliver; carries whether trying again can help."""

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        retry_after: float | None = None,
        status: int | None = None,
        response: str | None = None,
        unknown_outcome: bool = False,
        request_summary: str | None = None,
    ) -> None:
        self.retryable = retryable
        self.unknown_outcome = unknown_outcome
        """The request may have reached the back office (read timeout, dropped after
        sending): the retry carries the same idempotency key, and the attempt is flagged."""
        self.request_summary = request_summary
        self.retry_after = retry_after
        self.status = status
        self.response = response
        super().__init__(message)
