"""A small cron: five fields (minute hour day-of-month month day-of-week) with ``*``,
numbers, ranges (``1-5``), steps (``*/15``, ``0-30/10``) and lists (``0,30``), evaluated
as wall-clock time in an IANA zone.

As in cron, when both day-of-month and day-of-week are restricted a day matching either
runs; day-of-week 0 and 7 are Sunday. Names (``MON``, ``JAN``) and ``@daily`` shortcuts
are accepted for the common cases. Only :meth:`Cron.previous` is needed by the cutter:
"the latest fire time at or before now", which makes a missed fire (no process running
at 00:30) visible at the next start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))
_FIELDS = ("minute", "hour", "day of month", "month", "day of week")
_MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
_WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
_NAMES = {
    3: {m: i + 1 for i, m in enumerate(_MONTHS)},
    4: {d: i for i, d in enumerate(_WEEKDAYS)},
}
_SHORTCUTS = {
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
}


class CronError(ValueError):
    """An expression that is not a valid cron schedule."""


def _number(text: str, index: int) -> int:
    names = _NAMES.get(index, {})
    if text.upper() in names:
        return names[text.upper()]
    if not text.isdigit():
        raise CronError(f"{_FIELDS[index]}: {text!r} is not a number")
    return int(text)


def _field(text: str, index: int) -> tuple[frozenset[int], bool]:
    """The values a field allows, and whether it is restricted (not ``*``)."""
    low, high = _RANGES[index]
    values: set[int] = set()
    for part in text.split(","):
        spec, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not step_text.isdigit() or int(step_text) == 0:
                raise CronError(f"{_FIELDS[index]}: bad step in {part!r}")
            step = int(step_text)
        if spec == "*":
            start, end = low, high
        elif "-" in spec:
            first, _, last = spec.partition("-")
            start, end = _number(first, index), _number(last, index)
        else:
            start = _number(spec, index)
            end = high if slash else start
        if not (low <= start <= high and low <= end <= high) or start > end:
            raise CronError(f"{_FIELDS[index]}: {part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    if index == 4 and 7 in values:
        values.discard(7)
        values.add(0)
    return frozenset(values), text != "*"


@dataclass(frozen=True)
class Cron:
    """A parsed schedule in a time zone."""

    expression: str
    zone: ZoneInfo
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday
    days_restricted: bool
    weekdays_restricted: bool

    @classmethod
    def parse(cls, expression: str, zone: str = "Africa/Nairobi") -> Cron:
        """Parse ``expression``; raises :class:`CronError` saying which field is wrong."""
        try:
            tz = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise CronError(f"{zone!r} is not a known time zone") from None
        text = _SHORTCUTS.get(expression.strip().lower(), expression)
        parts = text.split()
        if len(parts) != 5:
            raise CronError(
                f"{expression!r}: a cron schedule has five fields "
                "(minute hour day-of-month month day-of-week), e.g. '30 0 * * *'"
            )
        fields = [_field(p, i) for i, p in enumerate(parts)]
        return cls(
            expression=expression,
            zone=tz,
            minutes=fields[0][0],
            hours=fields[1][0],
            days=fields[2][0],
            months=fields[3][0],
            weekdays=fields[4][0],
            days_restricted=fields[2][1],
            weekdays_restricted=fields[4][1],
        )

    def _day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        in_days = day.day in self.days
        in_weekdays = (day.isoweekday() % 7) in self.weekdays
        if self.days_restricted and self.weekdays_restricted:
            return in_days or in_weekdays
        return in_days and in_weekdays

    def previous(self, moment: datetime) -> datetime | None:
        """The latest fire time at or before ``moment`` (aware, UTC), within ~5 years."""
        local = moment.astimezone(self.zone).replace(second=0, microsecond=0, tzinfo=None)
        day = local.date()
        for offset in range(366 * 5):
            current = day - timedelta(days=offset)
            if not self._day_matches(current):
                continue
            limit = local.time() if offset == 0 else time(23, 59)
            for hour in sorted(self.hours, reverse=True):
                if hour > limit.hour:
                    continue
                top = limit.minute if hour == limit.hour else 59
                minute = max((m for m in self.minutes if m <= top), default=None)
                if minute is None:
                    continue
                wall = datetime.combine(current, time(hour, minute), tzinfo=self.zone)
                return wall.astimezone(UTC)
        return None

    def local_date(self, moment: datetime) -> date:
        """``moment``'s calendar day in the schedule's zone."""
        return moment.astimezone(self.zone).date()
