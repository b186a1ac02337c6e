"""The ``delimited`` format's cell values: times, amounts and mapped names from cell text."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from decimal import Decimal
from typing import Any

from ..errors import InvalidValue
from ._text import money
from .delimited_options import TIME_CACHE_LIMIT


def time_reader(time_format: str | None, zone: tzinfo) -> Callable[[str], datetime]:
    """Text to aware UTC: the pattern's own offset if it has one (``%z``), else ``zone``."""
    cache: dict[str, datetime] = {}

    def read(text: str) -> datetime:
        hit = cache.get(text)
        if hit is not None:
            return hit
        stripped = text.strip()
        if time_format is None:
            moment = datetime.fromisoformat(stripped)
        else:
            moment = datetime.strptime(stripped, time_format)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)
        result = moment.astimezone(UTC)
        if len(cache) >= TIME_CACHE_LIMIT:
            cache.clear()
        cache[text] = result
        return result

    return read


def amount_reader(decimal_separator: str) -> Callable[[str, str], Decimal | None]:
    """Cell text to Decimal (``None`` when blank); ``(1,000.00)`` is negative."""

    def read(text: str, field: str) -> Decimal | None:
        cleaned = text
        if decimal_separator == ",":
            cleaned = (
                text.replace(".", "")
                .replace(" ", "")
                .replace("\u00a0", "")
                .replace("\u202f", "")
                .replace(",", ".")
            )
        try:
            return money(cleaned, field)
        except InvalidValue:
            stripped = cleaned.strip()
            if stripped.startswith("(") and stripped.endswith(")"):
                try:
                    inner = money(stripped[1:-1], field)
                except InvalidValue:
                    pass
                else:
                    if inner is not None:
                        return -inner
            raise InvalidValue(field, f"{text!r} is not a number") from None

    return read


def lookup(values: dict[str, Any], text: str, field: str, allowed: str) -> Any:
    found = values.get(text)
    if found is None:
        found = values.get(text.strip().casefold())
        if found is None:
            what = f"{text!r} is not one of {allowed}" if text.strip() else "is empty"
            raise InvalidValue(field, what)
    return found
