"""``encoder_options`` of the ``iso8583`` encoder, and the default processing codes."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, field_validator

from ...model import Entry
from .specs import DEFAULT_SPEC

DEFAULT_PROCESSING_CODES: dict[str, str] = {
    "payment": "000000",  # purchase of goods and services
    "reversal": "000000",  # a reversal carries the processing code of what it reverses
    "deposit": "210000",
    "withdrawal": "010000",
    "transfer": "400000",
}
"""Field 3 by entry. Entries not listed (charge, payout, settlement, adjustment) need a
``processing_codes`` option: there is no code every host agrees on for them."""


class Iso8583Options(BaseModel):
    """``encoder_options`` of the ``iso8583`` encoder."""

    model_config = ConfigDict(extra="forbid")

    spec: str = DEFAULT_SPEC
    """A built-in spec name (1987-ascii, 1987-binary, 1993) or a YAML spec file."""
    mti: str = "advice"
    """``advice`` (0220/1220, the default), ``request`` (0200/1200), or the 4 digits."""
    zone: str = "Africa/Nairobi"
    """Time zone of fields 12/13 (local transaction time)."""
    acquirer_id: str | None = None
    """Field 32; left out when not set."""
    terminal_id: str | None = None
    """Field 41; the transaction's account (till / short code) when not set."""
    merchant_id: str | None = None
    """Field 42; the transaction's account when not set."""
    processing_codes: dict[str, str] = {}
    """Field 3 by entry, over :data:`DEFAULT_PROCESSING_CODES`."""
    fields: dict[str, str | None] = {}
    """Field by field overrides: a value (``{receipt}``, ``{account}``, ``{reference}``
    ... are filled in), or null to leave the field out."""

    @field_validator("processing_codes")
    @classmethod
    def _codes(cls, value: dict[str, str]) -> dict[str, str]:
        for entry, code in value.items():
            if entry not in {e.value for e in Entry}:
                raise ValueError(f"{entry!r} is not an entry")
            if len(code) != 6 or not code.isdigit():
                raise ValueError(f"{entry}: a processing code is 6 digits, not {code!r}")
        return value
