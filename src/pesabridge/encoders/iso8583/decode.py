"""Reading ISO 8583 messages back, field by field, with card and account data masked."""

from __future__ import annotations

import binascii
from dataclasses import dataclass

import iso8583

from ..base import EncodeError
from .specs import Iso8583Spec

MASKED_PAN_FIELDS = frozenset(("2",))
MASKED_ACCOUNT_FIELDS = frozenset(("102", "103"))


class DecodeError(EncodeError):
    """Bytes that are not a message of the given spec (says where decoding stopped)."""


@dataclass(frozen=True, slots=True)
class DecodedField:
    key: str
    """``t``, ``p``, ``1``, ``2`` .. ``128``."""
    description: str
    value: str
    """As shown to people: masked for fields 2, 102 and 103."""
    length: int
    """Characters (hex digits for binary data) of the unmasked value."""


def mask_pan(value: str) -> str:
    """First 6 and last 4 digits of a PAN (PCI DSS); shorter numbers fully masked."""
    if len(value) < 13:
        return "*" * len(value)
    return value[:6] + "*" * (len(value) - 10) + value[-4:]


def mask_account(value: str) -> str:
    """First 2 and last 4 characters of account data; 6 or fewer fully masked."""
    if len(value) <= 6:
        return "*" * len(value)
    return value[:2] + "*" * (len(value) - 6) + value[-4:]


def masked(key: str, value: str) -> str:
    """``value`` as a person may see it in field ``key``."""
    if key in MASKED_PAN_FIELDS:
        return mask_pan(value)
    if key in MASKED_ACCOUNT_FIELDS:
        return mask_account(value)
    return value


def _order(key: str) -> tuple[int, int]:
    special = {"h": -4, "t": -3, "p": -2}
    return (special[key], 0) if key in special else (int(key), 0)


def decode_message(raw: bytes, spec: Iso8583Spec) -> list[DecodedField]:
    """The message's fields in order (header, MTI, bitmaps, then 2..128), masked."""
    try:
        fields, _ = iso8583.decode(raw, spec.fields)
    except iso8583.DecodeError as exc:
        raise DecodeError(f"not a {spec.name} message: {exc}", field=f"field {exc.field}") from None
    result: list[DecodedField] = []
    for key in sorted(fields, key=_order):
        value = fields[key]
        if key == "h" and not value:
            continue
        text = value if isinstance(value, str) else binascii.hexlify(value).decode().upper()
        result.append(DecodedField(key, spec.describe(key), masked(key, text), len(text)))
    return result


def read_messages(data: bytes) -> list[bytes]:
    """Messages from what a user passes: hex text (one message per line) or raw bytes."""
    try:
        text = data.decode("ascii")
    except UnicodeDecodeError:
        return [data]
    lines = [line.strip().replace(" ", "") for line in text.splitlines() if line.strip()]
    if lines and all(_is_hex(line) for line in lines):
        return [binascii.unhexlify(line) for line in lines]
    return [data]


def _is_hex(text: str) -> bool:
    return len(text) % 2 == 0 and all(c in "0123456789abcdefABCDEF" for c in text)
