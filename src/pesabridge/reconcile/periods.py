"""Days in the account's zone, and which times an ingested statement covers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import Connection, select

from ..store.schema import files


def day_start(day: date, zone: tzinfo) -> datetime:
    """The instant (UTC) the local ``day`` begins in ``zone``."""
    return datetime.combine(day, time(0), zone).astimezone(UTC)


def period_bounds(start: date, end: date, zone: tzinfo) -> tuple[datetime, datetime]:
    """``[start 00:00, end+1 00:00)`` local, as UTC instants. ``end`` is inclusive."""
    if end < start:
        raise ValueError(f"the period ends ({end}) before it starts ({start})")
    return day_start(start, zone), day_start(end + timedelta(days=1), zone)


def day_of(zone: tzinfo) -> Callable[[datetime], date]:
    """A fast ``moment -> local date`` for ``zone``.

    Called once per transaction on a million-row day, so a zone with a fixed offset (East
    Africa Time has had none since 1960) is a single addition, and any other zone is
    cached per UTC hour (offsets change on hour boundaries in every zone in use).
    """
    probe = datetime(2000, 1, 1, tzinfo=UTC)
    offsets = {probe.replace(month=m).astimezone(zone).utcoffset() for m in (1, 4, 7, 10)}
    if len(offsets) == 1:
        offset = offsets.pop() or timedelta(0)

        def fixed(moment: datetime) -> date:
            return (moment + offset).date()

        return fixed
    cache: dict[datetime, datetime] = {}

    def varying(moment: datetime) -> date:
        hour = moment.replace(minute=0, second=0, microsecond=0)
        local = cache.get(hour)
        if local is None:
            if len(cache) > 100_000:
                cache.clear()
            local = cache[hour] = hour.astimezone(zone).replace(tzinfo=None)
        return (local + (moment - hour)).date()

    return varying


def raw_day_of(zone: tzinfo) -> Callable[[Any], date]:
    """``raw time -> local date`` for times read untyped (:func:`.sides.moment`).

    SQLite's text is cached by its hour (``2024-05-06 09``), or its minute in a zone
    whose offset is not whole hours, so a million rows cost a million dict look-ups.
    """
    typed = day_of(zone)
    probe = datetime(2000, 1, 1, tzinfo=UTC)
    whole_hours = all(
        (probe.replace(month=m).astimezone(zone).utcoffset() or timedelta(0)) % timedelta(hours=1)
        == timedelta(0)
        for m in (1, 4, 7, 10)
    )
    width = 13 if whole_hours else 16
    cache: dict[str, date] = {}

    def day(value: Any) -> date:
        if isinstance(value, str):
            key = value[:width]
            hit = cache.get(key)
            if hit is None:
                if len(cache) > 200_000:
                    cache.clear()
                text = key if width == 16 else key + ":00"
                hit = cache[key] = typed(datetime.fromisoformat(text).replace(tzinfo=UTC))
            return hit
        # PostgreSQL: an aware datetime in the session's zone, whatever that is
        return typed(value.astimezone(UTC))

    return day


@dataclass(frozen=True, slots=True)
class Coverage:
    """An ingested statement file of the account and the time span it covers."""

    file_id: int
    name: str
    start: datetime
    end: datetime
    opening_minor: int | None
    closing_minor: int | None


def statement_files(
    conn: Connection,
    provider: str,
    account: str,
    start: datetime,
    end: datetime,
    to_minor: Callable[[str], int],
) -> list[Coverage]:
    """Done statement files of the account whose period (the preamble's ``Time Period``)
    overlaps ``[start, end)``, oldest first.

    A file whose preamble has no period covers nothing: its rows are still compared,
    but a callback is called unconfirmed only against a stated period.
    """
    found: list[Coverage] = []
    rows = conn.execute(
        select(files.c.id, files.c.name, files.c.header).where(
            files.c.status == "done", files.c.header.is_not(None)
        )
    )
    for file_id, name, header_text in rows:
        try:
            header = json.loads(header_text)
        except ValueError:
            continue
        if header.get("provider") != provider or (header.get("account") or "") != account:
            continue
        begin, finish = _moment(header.get("period_start")), _moment(header.get("period_end"))
        if begin is None or finish is None:
            continue
        # The portal prints "To dd-mm-yyyy 23:59:59": the whole last second is covered.
        finish += timedelta(seconds=1) if finish.microsecond == 0 else timedelta(0)
        if finish <= start or begin >= end:
            continue
        found.append(
            Coverage(
                file_id,
                name,
                begin,
                finish,
                _minor(header.get("opening_balance"), to_minor),
                _minor(header.get("closing_balance"), to_minor),
            )
        )
    found.sort(key=lambda c: (c.start, c.file_id))
    return found


def covered(spans: Iterable[Coverage]) -> Callable[[datetime], bool]:
    """``moment -> bool``: whether any statement covers that moment."""
    merged: list[tuple[datetime, datetime]] = []
    for span in sorted(spans, key=lambda s: s.start):
        if merged and span.start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], span.end))
        else:
            merged.append((span.start, span.end))

    def inside(moment: datetime) -> bool:
        return any(begin <= moment < finish for begin, finish in merged)

    return inside


def _moment(text: object) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _minor(text: object, to_minor: Callable[[str], int]) -> int | None:
    if not isinstance(text, str):
        return None
    try:
        return to_minor(text)
    except (ValueError, ArithmeticError):
        return None
