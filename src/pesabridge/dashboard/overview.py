"""The Overview page's figures: volumes per provider and account, hourly volume, delivery
lag and failure rate per sink, source health."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import Connection, func, select

from ..config import Config
from ..registry import source_class
from ..store.schema import attempts, deliveries, evidence, source_state, transactions

STALE = timedelta(minutes=15)
"""A polling source not polled for this long is amber."""
LAG_SAMPLE = 20_000


@dataclass
class Volume:
    """One provider/account/currency's count and sum per outcome, in a window."""

    provider: str
    account: str
    currency: str
    counts: dict[str, int] = field(default_factory=dict)
    sums: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: str, count: int, total: int | None) -> None:
        self.counts[outcome] = self.counts.get(outcome, 0) + count
        self.sums[outcome] = self.sums.get(outcome, 0) + int(total or 0)


OUTCOMES = ("received", "delivered", "failed", "dead")


def window_starts(now: datetime, zone: tzinfo) -> dict[str, datetime]:
    """Midnight today and Monday this week, in the dashboard's zone."""
    local = now.astimezone(zone)
    today = datetime.combine(local.date(), time(), zone)
    return {"today": today, "this week": today - timedelta(days=local.weekday())}


def volumes(conn: Connection, since: datetime) -> list[Volume]:
    """Transactions that occurred since ``since``, and their deliveries by outcome."""
    t, d = transactions.c, deliveries.c
    found: dict[tuple[str, str, str], Volume] = {}

    def volume(provider: str, account: str, currency: str) -> Volume:
        key = (provider, account, currency)
        return found.setdefault(key, Volume(*key))

    for provider, account, currency, count, total in conn.execute(
        select(t.provider, t.account, t.currency, func.count(), func.sum(t.amount_minor))
        .where(t.occurred_at >= since)
        .group_by(t.provider, t.account, t.currency)
    ):
        volume(provider, account, currency).add("received", count, total)
    failing = d.last_error.is_not(None)
    for provider, account, currency, state, error, count, total in conn.execute(
        select(
            t.provider,
            t.account,
            t.currency,
            d.state,
            failing,
            func.count(),
            func.sum(t.amount_minor),
        )
        .join(deliveries, d.transaction_id == t.id)
        # Through the occurred_at index: as a plain join condition SQLite scans every
        # delivery instead (a third of a second per window at a million transactions).
        .where(t.id.in_(select(t.id).where(t.occurred_at >= since).scalar_subquery()))
        .group_by(t.provider, t.account, t.currency, d.state, failing)
    ):
        outcome = {"delivered": "delivered", "dead": "dead"}.get(state)
        if outcome is None and state == "pending" and error:
            outcome = "failed"
        if outcome is not None:
            volume(provider, account, currency).add(outcome, count, total)
    return sorted(found.values(), key=lambda v: (v.provider, v.account, v.currency))


def hourly(conn: Connection, now: datetime, zone: tzinfo) -> list[tuple[str, int]]:
    """Transactions per hour over the last 24 hours, oldest first (labels in ``zone``)."""
    start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=23)
    counts = [0] * 24
    t = transactions.c
    # Bucketed here rather than in SQL: hour truncation is spelled differently per database.
    for (moment,) in conn.execute(select(t.occurred_at).where(t.occurred_at >= start)):
        index = int((moment - start).total_seconds() // 3600)
        if 0 <= index < 24:
            counts[index] += 1
    return [
        ((start + timedelta(hours=i)).astimezone(zone).strftime("%H"), counts[i]) for i in range(24)
    ]


@dataclass
class SinkHealth:
    name: str
    attempts: int = 0
    failed: int = 0
    lag_p50: float | None = None
    lag_p95: float | None = None
    backlog: int = 0

    @property
    def failure_rate(self) -> float:
        return self.failed / self.attempts if self.attempts else 0.0


def sinks(conn: Connection, now: datetime) -> list[SinkHealth]:
    """Per sink over the last 24 hours: attempts, failed share, and the lag from a
    delivery's creation to its successful attempt (median and 95th percentile)."""
    since = now - timedelta(hours=24)
    a, d = attempts.c, deliveries.c
    found: dict[str, SinkHealth] = {}
    for sink, outcome, count in conn.execute(
        select(d.sink, a.outcome, func.count())
        .join(deliveries, d.id == a.delivery_id)
        .where(a.finished_at >= since)
        .group_by(d.sink, a.outcome)
    ):
        health = found.setdefault(sink, SinkHealth(sink))
        health.attempts += count
        if outcome != "delivered":
            health.failed += count
    lags: dict[str, list[float]] = {}
    for sink, finished, created in conn.execute(
        select(d.sink, a.finished_at, d.created_at)
        .join(deliveries, d.id == a.delivery_id)
        .where(a.finished_at >= since, a.outcome == "delivered")
        .order_by(a.finished_at.desc())
        .limit(LAG_SAMPLE)
    ):
        lags.setdefault(sink, []).append(max(0.0, (finished - created).total_seconds()))
    for sink, values in lags.items():
        values.sort()
        health = found.setdefault(sink, SinkHealth(sink))
        health.lag_p50 = values[len(values) // 2]
        health.lag_p95 = values[min(len(values) - 1, int(len(values) * 0.95))]
    for sink, count in conn.execute(
        select(d.sink, func.count()).where(d.state.in_(("pending", "in_flight"))).group_by(d.sink)
    ):
        found.setdefault(sink, SinkHealth(sink)).backlog = count
    return sorted(found.values(), key=lambda s: s.name)


@dataclass
class SourceHealth:
    name: str
    kind: str
    colour: str  # red | amber | green | grey
    summary: str
    state: dict[str, Any] = field(default_factory=dict)


def sources(conn: Connection, config: Config | None, now: datetime) -> list[SourceHealth]:
    """Every configured or recorded source with a red/amber/green state:
    red when its last poll failed (or it never succeeded), amber when it has not been
    polled for :data:`STALE` (or not yet), green otherwise. Callback sources are not
    polled: grey, with the time of the last callback received."""
    states = {r["name"]: dict(r) for r in conn.execute(select(source_state)).mappings()}
    kinds = {s.name: s.type for s in config.sources} if config else {}
    last_callback = conn.execute(
        select(evidence.c.observed_at)
        .where(evidence.c.kind == "callback")
        .order_by(evidence.c.id.desc())
        .limit(1)
    ).scalar()
    found = []
    for name in sorted(set(states) | set(kinds)):
        kind = kinds.get(name, "")
        cls = source_class(kind) if kind else None
        state = states.get(name, {})
        if cls is not None and hasattr(cls, "routes") and not state:
            found.append(
                SourceHealth(name, kind, "grey", "callbacks", {"last_callback_at": last_callback})
            )
            continue
        success, error_at = state.get("last_success_at"), state.get("last_error_at")
        polled = state.get("last_poll_at")
        if error_at is not None and (success is None or error_at > success):
            colour, summary = "red", f"failing: {state.get('last_error') or 'error'}"
        elif polled is None:
            colour, summary = "amber", "not polled yet"
        elif now - polled > STALE:
            colour, summary = (
                "amber",
                f"no poll for {int((now - polled).total_seconds() // 60)} min",
            )
        else:
            colour, summary = "green", "polling normally"
        found.append(SourceHealth(name, kind, colour, summary, state))
    return found
