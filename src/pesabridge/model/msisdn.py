"""Phone numbers as providers report them: plain, masked or hashed, and masking for logs."""

from __future__ import annotations

from enum import StrEnum


class MsisdnKind(StrEnum):
    """How much of the payer's number a provider disclosed."""

    PLAIN = "plain"
    MASKED = "masked"
    HASHED = "hashed"


def classify_msisdn(value: str) -> MsisdnKind:
    """Tell a plain number from a masked one (``2547 ***** 126``) or an opaque hash.

    A hash is kept as an id and never "normalised": the Daraja FAQ's own example is 62
    hex digits, so length is not checked.
    """
    if "*" in value:
        return MsisdnKind.MASKED
    digits = value[1:] if value.startswith("+") else value
    if digits.isdigit() and digits.isascii():
        return MsisdnKind.PLAIN
    return MsisdnKind.HASHED


def mask_msisdn(value: str | None) -> str:
    """What logs and unprivileged views show of a number: ``2547****5678``.

    Masked numbers are shown as received; hashes are shortened so they stay matchable by
    eye without filling a log line.
    """
    if not value:
        return ""
    kind = classify_msisdn(value)
    if kind is MsisdnKind.MASKED:
        return value
    if kind is MsisdnKind.HASHED:
        return value[:8] + "…" if len(value) > 8 else value
    if len(value) <= 8:
        return "*" * len(value)
    return value[:4] + "****" + value[-4:]
