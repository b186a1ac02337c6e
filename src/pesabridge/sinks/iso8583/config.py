"""``type: iso8583``: the sink's configuration and its response code table."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, field_validator, model_validator

from ...config import ComponentConfig, Strict
from ...encoders.iso8583 import Iso8583Encoder, Iso8583Options, load_spec
from .framing import LengthKind, parse_tpdu

Action = Literal["approved", "duplicate", "retry", "dead"]

CODES_1987: dict[str, Action] = {
    "00": "approved",
    "94": "duplicate",  # duplicate transmission: the host already has it
    "19": "retry",  # re-enter transaction
    "68": "retry",  # response received too late
    "90": "retry",  # cut-off in progress
    "91": "retry",  # issuer or switch inoperative
    "92": "retry",  # routing not possible for now
    "96": "retry",  # system malfunction
    "03": "dead",  # invalid merchant
    "05": "dead",  # do not honour
    "12": "dead",  # invalid transaction
    "13": "dead",  # invalid amount
    "14": "dead",  # invalid card / account number
    "30": "dead",  # format error
    "57": "dead",  # transaction not permitted
    "58": "dead",  # transaction not permitted to terminal
}
"""Response code (field 39) → what the sink does; codes not listed are dead letters."""

CODES_1993: dict[str, Action] = {
    "000": "approved",
    "913": "duplicate",  # duplicate transmission
    "903": "retry",  # re-enter transaction
    "907": "retry",  # issuer or switch inoperative
    "909": "retry",  # system malfunction
    "911": "retry",  # issuer timed out
    "100": "dead",  # do not honour
    "110": "dead",  # invalid amount
    "902": "dead",  # invalid transaction
    "904": "dead",  # format error
}
"""Action code (field 39, 1993) → what the sink does; codes not listed are dead letters."""

REVERSAL_DONE_1987 = ("00", "25", "94")
"""Answers to a reversal after which nothing of the original is left at the host:
reversed, original not found (never arrived), duplicate (already reversed)."""
REVERSAL_DONE_1993 = ("000", "400", "480", "913")


class FramingConfig(Strict):
    """How messages are cut out of the TCP stream."""

    length: LengthKind = "binary2"
    """``binary2`` (2-byte big-endian, the default), ``ascii4`` (4 digits) or ``binary4``."""
    includes_length: bool = False
    """Whether the length counts the prefix itself."""
    tpdu: str | None = None
    """A 5-byte TPDU in hex (``6000010000``) sent before every message; none when unset."""

    @field_validator("tpdu")
    @classmethod
    def _hex(cls, value: str | None) -> str | None:
        parse_tpdu(value)
        return value


class MessageConfig(Iso8583Options):
    """What the messages carry: exactly the ``iso8583`` encoder's options (and checked by
    them when the configuration is read). ``mti: advice`` (0220, the default) says the
    payment has already happened; ``request`` (0200) may be declined by the host, and is
    reversed when its answer is lost. ``zone`` is also the zone of the day on which the
    STAN sequence restarts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    def encoder_options(self) -> dict[str, Any]:
        return self.model_dump(exclude_defaults=True)


class Iso8583SinkConfig(ComponentConfig):
    """``type: iso8583``."""

    type: Literal["iso8583"] = "iso8583"
    host: str
    port: int = Field(ge=1, le=65535)
    message: MessageConfig = MessageConfig()
    framing: FramingConfig = FramingConfig()
    connections: int = Field(default=1, ge=1, le=16)
    """Persistent connections kept open (each signed on)."""
    max_in_flight: int = Field(default=32, ge=1, le=1024)
    """Messages awaiting an answer at once, over all connections."""
    connect_timeout: float = Field(default=5.0, gt=0)
    """Seconds to wait for a signed-on connection; nothing was sent if it runs out."""
    response_timeout: float = Field(default=10.0, gt=0)
    """Seconds to wait for an answer; then the outcome is unknown (repeat or reverse)."""
    repeats: int = Field(default=2, ge=0, le=20)
    """Repeats (0221, 0421) sent within one attempt before it ends as a retry; later
    attempts go on repeating."""
    sign_on: bool = True
    """Send a sign-on (0800, field 70 = 001) on every new connection."""
    echo_interval: float = Field(default=60.0, ge=0)
    """Seconds of silence on a connection before an echo test (0: never)."""
    reconnect_base: float = Field(default=0.5, gt=0)
    reconnect_cap: float = Field(default=30.0, gt=0)
    response_codes: dict[str, Action] = {}
    """Over the defaults for the spec's version (see ``CODES_1987``/``CODES_1993``)."""
    reversal_done: list[str] | None = None
    """Answers to a reversal that settle it (default: approved, original not found,
    duplicate)."""
    max_attempts: int = Field(default=12, ge=1)
    backoff_base: float = Field(default=2.0, gt=0)
    backoff_cap: float = Field(default=3600.0, gt=0)

    @model_validator(mode="after")
    def _encoder(self) -> Iso8583SinkConfig:
        Iso8583Encoder(**self.message.encoder_options())  # refuses a bad spec, mti, zone
        width = len(load_spec(self.message.spec).approved)
        for code in [*self.response_codes, *(self.reversal_done or [])]:
            if len(code) != width:
                raise ValueError(f"response code {code!r}: spec codes are {width} characters")
        return self

    def code_table(self) -> dict[str, Action]:
        """The response code table in force."""
        base = CODES_1993 if load_spec(self.message.spec).version == 1993 else CODES_1987
        return {**base, **self.response_codes}

    def reversal_codes(self) -> frozenset[str]:
        if self.reversal_done is not None:
            return frozenset(self.reversal_done)
        v1993 = load_spec(self.message.spec).version == 1993
        return frozenset(REVERSAL_DONE_1993 if v1993 else REVERSAL_DONE_1987)
