"""How ISO 8583 messages are cut out of a TCP stream: a length prefix and a TPDU.

Hosts disagree on the prefix: a 2-byte big-endian binary length is the common default,
some want 4 ASCII digits or a 4-byte binary length, and a few count the prefix itself in
the length. A NAC or a front-end processor may also want a 5-byte TPDU (``60`` + a
2-byte destination + a 2-byte origin address) before each message; the answer carries
it back with the addresses swapped. The length always covers the TPDU and the message.
"""

from __future__ import annotations

import asyncio
import binascii
import struct
from dataclasses import dataclass
from typing import Literal

LengthKind = Literal["binary2", "ascii4", "binary4"]
HEADER_SIZE: dict[str, int] = {"binary2": 2, "ascii4": 4, "binary4": 4}
LIMIT: dict[str, int] = {"binary2": 0xFFFF, "ascii4": 9999, "binary4": 0xFFFF_FFFF}
TPDU_SIZE = 5


class FramingError(ValueError):
    """Bytes on the wire that are not a frame of the agreed kind (a desynchronised or
    foreign peer): the connection cannot be trusted any more and is closed."""


def parse_tpdu(text: str | None) -> bytes:
    """A TPDU given as hex (``6000000000``): 5 bytes, starting with 0x60; empty if None."""
    if not text:
        return b""
    try:
        raw = binascii.unhexlify(text.replace(" ", ""))
    except (binascii.Error, ValueError):
        raise ValueError(f"tpdu {text!r} is not hex") from None
    if len(raw) != TPDU_SIZE:
        raise ValueError(f"tpdu {text!r} is {len(raw)} bytes; a TPDU is {TPDU_SIZE}")
    return raw


def swap_tpdu(tpdu: bytes) -> bytes:
    """The TPDU of an answer: the same ID, destination and origin swapped."""
    if len(tpdu) != TPDU_SIZE:
        return tpdu
    return tpdu[:1] + tpdu[3:5] + tpdu[1:3]


@dataclass(frozen=True, slots=True)
class Framing:
    """One framing convention, used by both ends (the sink and the test host)."""

    length: LengthKind = "binary2"
    includes_length: bool = False
    """Whether the length counts the length prefix itself."""
    tpdu: bytes = b""
    """Sent before every message (empty: none). A reader strips as many bytes."""

    @property
    def header_size(self) -> int:
        return HEADER_SIZE[self.length]

    def frame(self, message: bytes, tpdu: bytes | None = None) -> bytes:
        """Prefix + TPDU + ``message``, ready to write."""
        payload = (self.tpdu if tpdu is None else tpdu) + message
        size = len(payload) + (self.header_size if self.includes_length else 0)
        if size > LIMIT[self.length]:
            raise FramingError(f"a {size}-byte frame does not fit a {self.length} length")
        if self.length == "binary2":
            header = struct.pack(">H", size)
        elif self.length == "binary4":
            header = struct.pack(">I", size)
        else:
            header = b"%04d" % size
        return header + payload

    def payload_size(self, header: bytes) -> int:
        """How many bytes follow a length prefix."""
        if self.length == "ascii4":
            if not header.isdigit():
                raise FramingError(f"length prefix {header!r} is not 4 ASCII digits")
            size = int(header)
        else:
            size = int.from_bytes(header, "big")
        if self.includes_length:
            size -= self.header_size
        if size < len(self.tpdu):
            raise FramingError(f"a frame of {size} bytes is shorter than its TPDU")
        return size

    async def read(self, reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
        """The next frame as (TPDU, message). Raises ``asyncio.IncompleteReadError`` when
        the peer closes, :class:`FramingError` on a length that makes no sense."""
        header = await reader.readexactly(self.header_size)
        payload = await reader.readexactly(self.payload_size(header))
        cut = len(self.tpdu)
        return payload[:cut], payload[cut:]
