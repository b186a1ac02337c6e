"""Cutting a file-drop sink's deliveries into batches, fixed once cut.

A cut takes the sink's due deliveries on a schedule (cron in a time zone: ``30 0 * * *`` in
``Africa/Nairobi`` cuts the days that ended before 00:30) and/or every ``every``
transactions, groups them per account and day, and fixes each group as a *batch*: its
sequence number, its file name (``<sink>_<account>_<yyyymmdd>_<seq>.<ext>``), its encoded
bytes and their sha256, all stored in the ledger in the same transaction that takes the
deliveries. From then on the batch never changes: an upload, and every retry of it, sends
exactly those bytes under exactly that name.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

from ..encoders.base import EncodeError
from ..encoders.registry import get_encoder
from ..encoders.statements import build_statements
from ..store import Store, utcnow
from ..store import batches as db
from .cron import Cron
from .filedrop_config import STATEMENT_ENCODERS, FileDropConfig

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


def file_name(sink: str, account: str, period: date, sequence: int, extension: str) -> str:
    """The batch's name: the same for the batch forever, never another batch's."""
    safe_sink, safe_account = _SAFE.sub("_", sink), _SAFE.sub("_", account)
    return f"{safe_sink}_{safe_account}_{period:%Y%m%d}_{sequence:03d}.{extension}"


@dataclass(frozen=True, slots=True)
class CutBatch:
    """What one cut produced (or, in a dry run, would produce)."""

    batch_id: int | None
    file_name: str
    account: str
    period: date
    entries: int
    size: int
    sha256: str


@dataclass(frozen=True, slots=True)
class CutResult:
    batches: list[CutBatch]
    refused: list[str]
    """Why deliveries could not be put in a file (they were dead-lettered)."""


class Cutter:
    """One file-drop sink's cuts: when they are due, and what each one fixes."""

    def __init__(self, config: FileDropConfig) -> None:
        self.config = config
        self.name = config.name
        self.cron = Cron.parse(config.schedule, config.timezone) if config.schedule else None
        self.encoder = get_encoder(config.encoder, config.encoder_options_for_zone())
        self.extension = STATEMENT_ENCODERS[config.encoder]

    def cut(
        self,
        store: Store,
        *,
        trigger: str,
        before: datetime | None = None,
        limit: int | None = None,
        dry_run: bool = False,
        now: datetime | None = None,
    ) -> CutResult:
        """Cut the due deliveries (of transactions before ``before``) into batches."""
        now = now or utcnow()
        with store.engine.connect() as conn:
            transaction = conn.begin()
            try:
                result = self._cut(conn, trigger, before, limit, now)
            except BaseException:
                transaction.rollback()
                raise
            if dry_run:
                transaction.rollback()
            else:
                transaction.commit()
        return result

    def _cut(
        self, conn: Any, trigger: str, before: datetime | None, limit: int | None, now: datetime
    ) -> CutResult:
        items = db.pending(conn, self.name, now, before=before, limit=limit)
        groups: dict[tuple[str, str, str], list[db.Pending]] = {}
        refused: list[str] = []
        for item in items:
            t = item.transaction
            if t.account is None or t.occurred_at is None:
                error = f"{t.describe()}: has no {'account' if t.account is None else 'time'}"
                db.refuse(conn, [item.delivery_id], error, now)
                refused.append(error)
                continue
            groups.setdefault((t.provider, t.account, t.currency), []).append(item)
        made: list[CutBatch] = []
        for (provider, account, currency), members in groups.items():
            savepoint = conn.begin_nested()
            try:
                made_here = self._cut_account(
                    conn, provider, account, currency, members, trigger, now
                )
            except EncodeError as exc:
                # Nothing of this account is cut: its entries are dead-lettered with the
                # reason (replayable once fixed); other accounts are cut as usual.
                savepoint.rollback()
                error = f"cannot write a {self.config.encoder} statement for {account}: {exc}"
                db.refuse(conn, [m.delivery_id for m in members], error, now)
                refused.append(error)
                continue
            savepoint.commit()
            made.extend(made_here)
        return CutResult(made, refused)

    def _statement_id(self, account: str, period: date, sequence: int, name: str) -> str:
        if self.config.encoder == "mt940":  # :20: holds 16 SWIFT characters
            return "PB" + hashlib.sha256(name.encode()).hexdigest()[:14].upper()
        return f"{account}-{period:%Y%m%d}-{sequence}"[-35:]

    def _cut_account(
        self,
        conn: Any,
        provider: str,
        account: str,
        currency: str,
        members: list[db.Pending],
        trigger: str,
        now: datetime,
    ) -> list[CutBatch]:
        carried = db.last_closing(conn, self.name, provider, account, currency)
        opening = Decimal(carried) if carried is not None else self.config.opening_balance
        by_key = {id(m.transaction): m for m in members}
        statements = build_statements(
            [m.transaction for m in members], self.config.timezone, opening, created_at=now
        )
        made: list[CutBatch] = []
        for statement in statements:
            period = statement.period_start
            sequence = db.next_sequence(conn, self.name, account, period)
            name = file_name(self.name, account, period, sequence, self.extension)
            fixed = dataclasses.replace(
                statement, statement_id=self._statement_id(account, period, sequence, name)
            )
            content: bytes = self.encoder.encode_statement(fixed)
            digest = hashlib.sha256(content).hexdigest()
            batch_id = db.insert_batch(
                conn,
                {
                    "sink": self.name,
                    "provider": provider,
                    "account": account,
                    "currency": currency,
                    "period": period,
                    "sequence": sequence,
                    "file_name": name,
                    "encoder": self.config.encoder,
                    "content": content,
                    "sha256": digest,
                    "size": len(content),
                    "entries": len(fixed.entries),
                    "closing_balance": str(fixed.closing_balance),
                    "trigger": trigger,
                },
                [by_key[id(t)].delivery_id for t in fixed.entries],
                now,
            )
            made.append(
                CutBatch(batch_id, name, account, period, len(fixed.entries), len(content), digest)
            )
        return made

    def boundary(self, fire: datetime) -> datetime:
        """What a scheduled fire at ``fire`` cuts: transactions before this moment."""
        if self.config.cut_open_day:
            return fire
        assert self.cron is not None
        day = self.cron.local_date(fire)
        return datetime.combine(day, time(0), tzinfo=self.cron.zone).astimezone(UTC)

    def due_cuts(self, store: Store, now: datetime | None = None) -> list[CutResult]:
        """Make the cuts the schedule and the count call for; returns what was cut.

        ``now`` is the schedule's clock (tests move it); deliveries are due by the real one.
        """
        now = now or utcnow()
        results: list[CutResult] = []
        with store.exclusive(f"cut:{self.name}") as held:
            if not held:
                return results
            if self.cron is not None:
                fire = self.cron.previous(now)
                if fire is not None:
                    with store.read() as conn:
                        last = db.last_fire(conn, self.name)
                    if last is None or last < fire:
                        results.append(
                            self.cut(store, trigger="schedule", before=self.boundary(fire))
                        )
                        with store.write() as conn:
                            db.note_fire(conn, self.name, fire)
            every = self.config.every
            if every is not None:
                while True:
                    with store.read() as conn:
                        waiting = db.count_pending(conn, self.name, utcnow())
                    if waiting < every:
                        break
                    result = self.cut(store, trigger="count", limit=every)
                    results.append(result)
                    if not result.batches and not result.refused:
                        break
        return results
