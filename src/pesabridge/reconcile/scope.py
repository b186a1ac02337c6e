"""What one reconciliation run looks at (:class:`Scope`) and what it found so far
(:class:`Result`): a tally per day and outcome, the findings, the backfills."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, tzinfo
from decimal import Decimal

from ..model.currency import minor_units
from .matching import Pair
from .persist import Tally
from .records import Finding, MatchCount
from .settings import AccountSettings, MatchRules


def finding_key(*parts: object) -> str:
    """A finding's stable name: sha256 over what and where."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


@dataclass(slots=True)
class Scope:
    """What one run looks at."""

    provider: str
    account: str
    start: date
    end: date
    zone: tzinfo
    start_utc: datetime
    end_utc: datetime
    currency: str
    settings: AccountSettings
    rules: MatchRules
    receives_callbacks: bool
    hold_minor: int | None = None
    """Callbacks of at least this amount (minor units) wait for a statement."""

    def day(self, moment: datetime | None) -> date:
        """The local day of ``moment``, kept inside the period."""
        if moment is None:
            return self.end
        local = moment.astimezone(self.zone).date()
        return min(max(local, self.start), self.end)

    def money(self, minor: int | None) -> str:
        if minor is None:
            return "-"
        value = Decimal(minor).scaleb(-minor_units(self.currency))
        return f"{value:,} {self.currency}"

    @property
    def tolerance(self) -> int:
        return int(self.rules.amount_tolerance.scaleb(minor_units(self.currency)))


@dataclass(slots=True)
class Result:
    tally: Tally = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)
    backfill: list[int] = field(default_factory=list)
    release: list[int] = field(default_factory=list)
    """Held callbacks a statement now confirms: to be routed."""
    matches: list[MatchCount] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    checked: set[str] = field(default_factory=set)
    """Exception kinds this run evaluated (open ones of these kinds it did not find
    again are cleared)."""

    def count(self, day: date, outcome: str, amount_minor: int) -> None:
        slot = self.tally.get((day, outcome))
        if slot is None:
            self.tally[(day, outcome)] = [1, amount_minor]
        else:
            slot[0] += 1
            slot[1] += amount_minor

    def uncount(self, day: date, outcome: str, amount_minor: int) -> None:
        slot = self.tally[(day, outcome)]
        slot[0] -= 1
        slot[1] -= amount_minor
        if slot[0] == 0:
            del self.tally[(day, outcome)]

    def add_matches(self, method: str, pairs: Sequence[Pair]) -> None:
        if pairs:
            mean = sum(p.confidence for p in pairs) / len(pairs)
            self.matches.append(MatchCount(method, len(pairs), round(mean, 3)))
