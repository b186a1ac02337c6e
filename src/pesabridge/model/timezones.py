"""Provider time zones. M-Pesa reports East Africa Time (UTC+3, no daylight saving)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

EAT = timezone(timedelta(hours=3), "EAT")


def eat_to_utc(moment: datetime) -> datetime:
    """A naive wall-clock time in East Africa Time, as UTC."""
    return moment.replace(tzinfo=EAT).astimezone(UTC)
