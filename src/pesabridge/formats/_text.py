"""Helpers shared by the text-based parsers: decoding, peeking, EAT times and amounts.

Everything here sits on a hot path (a statement can hold a million rows), so the
common case is a few slices and dictionary look-ups; the general case falls back to a
regular expression only when the cheap check fails.
"""

from __future__ import annotations

import codecs
import io
import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import BinaryIO

from ..errors import InvalidValue
from ..model import parse_amount

# Bytes that are not valid UTF-8 are read as Windows-1252 (what Excel on Windows saves
# as "CSV"); the five bytes cp1252 leaves undefined fall back to Latin-1 so that no
# input byte is ever lost or makes decoding fail.
_CP1252 = tuple(
    bytes([b]).decode("cp1252") if b not in (0x81, 0x8D, 0x8F, 0x90, 0x9D) else chr(b)
    for b in range(256)
)
UTF8_OR_CP1252 = "pesabridge-cp1252"


def _cp1252_fallback(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    bad = exc.object[exc.start : exc.end]
    return "".join(_CP1252[b] for b in bad), exc.end


codecs.register_error(UTF8_OR_CP1252, _cp1252_fallback)


class _Prefixed(io.RawIOBase):
    """A non-seekable stream with the bytes already read from it put back in front."""

    def __init__(self, prefix: bytes, rest: BinaryIO) -> None:
        self._prefix = prefix
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = self._rest.read(len(buffer))
        n = len(data)
        buffer[:n] = data
        return n


def peek(stream: BinaryIO, size: int) -> tuple[bytes, BinaryIO]:
    """The first ``size`` bytes of ``stream`` and a stream that still starts with them.

    Seekable streams are rewound; others (a pipe, stdin, a socket) are wrapped.
    """
    if stream.seekable():
        start = stream.tell()
        head = stream.read(size)
        stream.seek(start)
        return head, stream
    head = stream.read(size)
    return head, io.BufferedReader(_Prefixed(head, stream))


def open_text(stream: BinaryIO) -> io.TextIOWrapper:
    """Decode a byte stream incrementally: UTF-8 with or without BOM, else cp1252.

    ``newline=""`` keeps line ends as they are so :mod:`csv` can see quoted newlines.
    Call ``detach()`` on the result when done so the caller's stream is not closed.
    """
    return io.TextIOWrapper(
        stream,
        encoding="utf-8-sig",
        errors=UTF8_OR_CP1252,
        newline="",
    )


def decode_head(head: bytes) -> str:
    """Best-effort text of a file's first bytes, for sniffing."""
    return head.decode("utf-8-sig", errors=UTF8_OR_CP1252)


# --- times -----------------------------------------------------------------------------

_EAT_OFFSET = timedelta(hours=3)
_DAY_CACHE_LIMIT = 20_000

# "06-05-2024" / "06/05/2024" / "2024-05-06" -> midnight EAT as an aware UTC datetime
_day_cache: dict[str, datetime] = {}
# "21:05:59" -> time since midnight; at most 86,400 entries, so never trimmed
_time_cache: dict[str, timedelta] = {}

_LOOSE_DMY = re.compile(
    r"\s*(\d{1,2})[-/.](\d{1,2})[-/.](\d{4})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?\s*"
)
_LOOSE_YMD = re.compile(
    r"\s*(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?\s*"
)


def _day(key: str) -> datetime:
    """Midnight EAT of a validated ``dd-MM-yyyy``/``dd/MM/yyyy``/``yyyy-MM-dd`` key."""
    if key[2:3] in ("-", "/") and key[5:6] == key[2] and len(key) == 10:
        digits = (key[0:2], key[3:5], key[6:10])
        d, m, y = digits
    elif key[4:5] == "-" and key[7:8] == "-" and len(key) == 10:
        digits = (key[0:4], key[5:7], key[8:10])
        y, m, d = digits
    else:
        raise ValueError(key)
    if not all(part.isascii() and part.isdigit() for part in digits):
        raise ValueError(key)
    try:
        day = datetime(int(y), int(m), int(d), tzinfo=UTC) - _EAT_OFFSET
    except OverflowError:
        raise ValueError(key) from None
    if len(_day_cache) >= _DAY_CACHE_LIMIT:
        _day_cache.clear()
    _day_cache[key] = day
    return day


def _clock(key: str) -> timedelta:
    """Time since midnight of a validated ``HH:mm:ss`` or ``HH:mm`` key."""
    parts = key.split(":")
    if len(key) not in (5, 8) or not all(
        len(p) == 2 and p.isascii() and p.isdigit() for p in parts
    ):
        raise ValueError(key)
    h, mi, s = int(parts[0]), int(parts[1]), int(parts[2]) if len(parts) == 3 else 0
    if h > 23 or mi > 59 or s > 59:
        raise ValueError(key)
    since = timedelta(hours=h, minutes=mi, seconds=s)
    _time_cache[key] = since
    return since


def eat_text_to_utc(text: str) -> datetime:
    """An M-Pesa statement time (East Africa Time, no offset) as an aware UTC datetime.

    Accepts ``dd-MM-yyyy HH:mm:ss`` (the portal), ``dd/MM/yyyy HH:mm[:ss]`` (Excel
    re-saves, also with one-digit day, month or hour), ``yyyy-MM-dd HH:mm:ss`` (M-PESA
    1G) and a bare date (midnight). Raises :class:`ValueError` for anything else,
    including dates that do not exist (``31-02-2024``).
    """
    # Both caches hold only keys that passed validation, so two hits are a valid time.
    day = _day_cache.get(text[:10])
    if day is not None and text[10:11] == " ":
        since = _time_cache.get(text[11:])
        if since is not None:
            return day + since
    if len(text) in (16, 19) and text[10:11] in (" ", "T"):
        return (day or _day(text[:10])) + _clock(text[11:])
    if len(text) == 10:
        return _day(text)
    return _loose_eat(text)


def _loose_eat(text: str) -> datetime:
    match = _LOOSE_DMY.fullmatch(text)
    if match:
        d, m, y = int(match[1]), int(match[2]), int(match[3])
    else:
        match = _LOOSE_YMD.fullmatch(text)
        if not match:
            raise ValueError(text)
        y, m, d = int(match[1]), int(match[2]), int(match[3])
    h, mi, s = (int(match[i]) if match[i] else 0 for i in (4, 5, 6))
    return datetime(y, m, d, h, mi, s, tzinfo=UTC) - _EAT_OFFSET


def eat_naive_to_text(moment: datetime) -> str:
    """A naive EAT datetime (a spreadsheet cell) as portal text, rounded to the second.

    Excel stores times as fractions of a day, so 21:05:59 can come back as
    21:05:58.999999; rounding restores what the sheet shows.
    """
    if moment.microsecond:
        moment = moment.replace(microsecond=0) + timedelta(
            seconds=1 if moment.microsecond >= 500_000 else 0
        )
    return moment.strftime("%d-%m-%Y %H:%M:%S")


# --- amounts ---------------------------------------------------------------------------


def money(text: str, field: str) -> Decimal | None:
    """An amount cell as Decimal, ``None`` when blank; raises :class:`InvalidValue`.

    The common cells (``250.00``, ``-1.25``, ``"1,020.00"``) cost one ``Decimal()`` call;
    anything odd goes through :func:`~pesabridge.model.parse_amount` for its message.
    """
    if not text:
        return None
    try:
        value = Decimal(text.replace(",", "") if "," in text else text)
    except InvalidOperation:
        if not text.strip():
            return None
        value = parse_amount(text, field)  # raises with the provider's text in the message
    if not value.is_finite():
        raise InvalidValue(field, f"{text!r} is not a number")
    return value
