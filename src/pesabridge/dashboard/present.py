"""How values are shown: money, times, masked numbers, redacted payloads, safe CSV cells."""

from __future__ import annotations

import json
import re
from datetime import datetime, tzinfo
from typing import Any

from ..model.msisdn import mask_msisdn
from ..store.rows import from_minor

SECRET_KEYS = re.compile(
    r"pass(word)?|secret|token|credential|signature|authorization|api[_-]?key|private",
    re.IGNORECASE,
)
"""Keys whose values never reach a page: payload fields, config options, headers."""
REDACTED = "[redacted]"
_LONG_NUMBER = re.compile(r"(?<![\w.])(\+?\d{4})\d{2,7}(\d{4})(?![\w.])")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def money(amount_minor: int | None, currency: str) -> str:
    """``150000, KES`` -> ``1,500.00``."""
    if amount_minor is None:
        return ""
    return f"{from_minor(amount_minor, currency):,}"


def when(moment: datetime | None, zone: tzinfo) -> str:
    """A time in the dashboard's zone, to the second."""
    if moment is None:
        return ""
    return moment.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")


def phone(value: str | None, unmasked: bool) -> str:
    """A number as this user may see it."""
    if not value:
        return ""
    return value if unmasked else mask_msisdn(value)


def mask_numbers(text: str) -> str:
    """Mask every long digit run in free text (raw payloads, reject lines) the way
    :func:`mask_msisdn` masks a number: first four, last four."""
    return _LONG_NUMBER.sub(lambda m: f"{m.group(1)}****{m.group(2)}", text)


def redact(value: Any) -> Any:
    """A JSON-like value with every secret-looking key's value replaced."""
    if isinstance(value, dict):
        return {
            k: REDACTED if isinstance(k, str) and SECRET_KEYS.search(k) else redact(v)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(v) for v in value]
    return value


def pretty_payload(raw: bytes, unmasked: bool) -> str:
    """Raw evidence for a page: JSON pretty-printed and redacted, other text as it is
    (query strings and form bodies redacted by key); numbers masked unless allowed."""
    text = raw.decode("utf-8", errors="replace")
    try:
        text = json.dumps(redact(json.loads(text)), indent=2, ensure_ascii=False)
    except ValueError:
        text = re.sub(
            r"(?i)((?:pass(?:word)?|secret|token|signature|api[_-]?key)[\"']?\s*[=:]\s*)[^&\s,;]+",
            rf"\1{REDACTED}",
            text,
        )
    return text if unmasked else mask_numbers(text)


def csv_cell(value: Any) -> str:
    """A CSV cell a spreadsheet will not run: text starting with ``= + - @``, tab or CR
    gets a leading apostrophe (OWASP's advice against formula injection)."""
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START):
        return "'" + text
    return text
