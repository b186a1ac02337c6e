"""File-drop sinks: statements (camt.053, MT940, OFX, CSV) dropped in a folder or on an
FTP, FTPS or SFTP server, in batches.

Deliveries to a file-drop sink are not posted one by one. A *cutter* takes the sink's due
deliveries on a schedule (cron in a time zone: ``30 0 * * *`` in ``Africa/Nairobi`` cuts
the days that ended before 00:30) and/or every ``every`` transactions, groups them per
account and day, and fixes each group as a *batch*: its sequence number, its file name
(``<sink>_<account>_<yyyymmdd>_<seq>.<ext>``), its encoded bytes and their sha256, all
stored in the ledger in the same transaction that takes the deliveries. From then on the
batch never changes: an upload, and every retry of it, sends exactly those bytes under
exactly that name.

An upload writes a hidden temporary file (``.<name>.part``) beside the target, checks its
size, renames it into place and checks again; then the batch is marked uploaded and all
its deliveries delivered, in one transaction. A retry after a failure or a crash
overwrites only its own temporary file; if the final name already holds the same bytes
(the rename happened, the process died before recording it) the batch is simply recorded
as uploaded; a *different* file under that name is never overwritten and is reported.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import inspect
import random
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar, Literal

import structlog
from pydantic import Field, PrivateAttr, SecretStr, ValidationError, model_validator

from ..aio import wait_or_stop
from ..config import ComponentConfig
from ..encoders.base import EncodeError
from ..encoders.registry import get_encoder
from ..encoders.statements import build_statements
from ..errors import DeliveryError, PesabridgeError
from ..sources.remotefs import LocalFS, RemoteEntry, RemoteError, RemoteFS, RemoteSession
from ..store import Claimed, Store, utcnow
from ..store import batches as db
from .base import Delivered
from .cron import Cron, CronError

log = structlog.get_logger("pesabridge.sinks.filedrop")

STATEMENT_ENCODERS = {"camt053": "xml", "mt940": "sta", "ofx": "ofx", "csv": "csv"}
_SAFE = re.compile(r"[^A-Za-z0-9._-]")


class FileDropConfig(ComponentConfig):
    """``type: file-drop``."""

    type: Literal["file-drop"] = "file-drop"
    transport: Literal["local", "ftp", "ftps", "sftp"]
    path: Path | None = None
    """``transport: local``: the folder files are dropped in (relative to the config)."""
    # The connection settings of the ftp, ftps and sftp sources, with the same meaning.
    host: str | None = None
    port: int = Field(default=0, ge=0, le=65535)
    user: str | None = None
    password: SecretStr | None = None
    remote_dir: str = "."
    timeout: float = Field(default=30.0, gt=0)
    passive: bool | None = None
    verify_tls: bool | None = None
    ca_file: Path | None = None
    private_key: Path | None = None
    passphrase: SecretStr | None = None
    known_hosts: Path | None = None
    host_key_fingerprint: str | None = None
    # What is written, and when.
    encoder: str = "camt053"
    encoder_options: dict[str, Any] = {}
    timezone: str = "Africa/Nairobi"
    """Statement days and the schedule are in this zone."""
    schedule: str | None = None
    """Cron (minute hour day month weekday) in ``timezone``: at each fire, every pending
    transaction of a day that ended before it is cut."""
    every: int | None = Field(default=None, ge=1)
    """Cut as soon as this many transactions are pending (whatever their day)."""
    cut_open_day: bool = False
    """At a scheduled fire, also cut today's transactions so far (sequence 2, 3 ... follow)."""
    opening_balance: Decimal = Decimal(0)
    """The first batch's opening balance when entries carry no balances; later batches
    open with the previous batch's closing balance."""
    check_interval: float = Field(default=5.0, gt=0)
    """Seconds between looks at the schedule, the pending count and failed uploads."""
    backoff_base: float = Field(default=5.0, gt=0)
    backoff_cap: float = Field(default=900.0, gt=0)

    _transport: Any = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _valid(self) -> FileDropConfig:
        if self.schedule is None and self.every is None:
            raise ValueError("give a schedule (cron), every (a count), or both")
        if self.schedule is not None:
            try:
                Cron.parse(self.schedule, self.timezone)
            except CronError as exc:
                raise ValueError(f"schedule: {exc}") from None
        if self.encoder not in STATEMENT_ENCODERS:
            raise ValueError(
                f"encoder: {self.encoder!r} is not a statement encoder; use one of "
                f"{', '.join(STATEMENT_ENCODERS)}"
            )
        try:
            get_encoder(self.encoder, self.encoder_options_for_zone())
        except (PesabridgeError, TypeError, ValueError) as exc:
            raise ValueError(f"encoder_options: {exc}") from None
        if self.transport == "local":
            if self.path is None:
                raise ValueError("transport local: give path (the drop folder)")
            extra = [f for f in _CONNECTION if f in self.model_fields_set]
            if extra:
                raise ValueError(f"transport local: {', '.join(extra)} do not apply")
            return self
        if self.path is not None:
            raise ValueError(f"transport {self.transport}: use remote_dir, not path")
        self._transport = self.transport_config()
        return self

    def encoder_options_for_zone(self) -> dict[str, Any]:
        """The encoder's options, with the sink's zone where the encoder takes one."""
        options = dict(self.encoder_options)
        target = get_encoder(self.encoder, options)
        if "timezone" not in options and "timezone" in inspect.signature(type(target)).parameters:
            options["timezone"] = self.timezone
        return options

    def transport_config(self) -> Any:
        """The ftp/ftps/sftp *source* config for the same server: one access layer."""
        from ..sources.ftp import FtpSourceConfig, FtpsSourceConfig
        from ..sources.sftp import SftpSourceConfig

        model: Any = {"ftp": FtpSourceConfig, "ftps": FtpsSourceConfig, "sftp": SftpSourceConfig}
        values = {
            f: getattr(self, f)
            for f in _CONNECTION
            if f in self.model_fields_set and getattr(self, f) is not None
        }
        values.update(name=self.name, type=self.transport)
        try:
            return model[self.transport].model_validate(values)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'connection'}: {e['msg']}"
                for e in exc.errors()
            )
            raise ValueError(problems) from None


_CONNECTION = (
    "host",
    "port",
    "user",
    "password",
    "remote_dir",
    "timeout",
    "passive",
    "verify_tls",
    "ca_file",
    "private_key",
    "passphrase",
    "known_hosts",
    "host_key_fingerprint",
)


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


class UploadConflict(RemoteError):
    """A different file already has the batch's name: never overwritten."""


class FileDropSink:
    """A back office that takes statement files; see the module documentation."""

    Config: ClassVar[type[ComponentConfig]] = FileDropConfig
    batched: ClassVar[bool] = True
    """Its deliveries are cut into batches here, never claimed by the delivery worker."""

    def __init__(self, config: FileDropConfig, base_dir: Path = Path(".")) -> None:
        self.config = config
        self.name = config.name
        self.base_dir = base_dir
        self.cron = Cron.parse(config.schedule, config.timezone) if config.schedule else None
        self.encoder = get_encoder(config.encoder, config.encoder_options_for_zone())
        self.extension = STATEMENT_ENCODERS[config.encoder]

    # -- the Sink protocol: never used one by one --------------------------------------

    async def deliver(self, claimed: Claimed) -> Delivered:
        raise DeliveryError(
            f"{self.name} is a file-drop sink: its deliveries are posted in batches",
            retryable=True,
        )

    async def close(self) -> None:
        return None

    # -- where files go ------------------------------------------------------------------

    def filesystem(self) -> tuple[RemoteFS, str]:
        """The access layer's file system and the folder to drop files in."""
        c = self.config
        if c.transport == "local":
            assert c.path is not None
            folder = c.path if c.path.is_absolute() else self.base_dir / c.path
            return LocalFS(folder), str(folder)
        transport = c.transport_config()
        if c.transport == "sftp":
            from ..sources.sftp import SftpFS

            return SftpFS(transport, self.base_dir), transport.remote_dir
        from ..sources.ftp import FtpFS

        return FtpFS(transport, self.base_dir), transport.remote_dir

    # -- cutting ---------------------------------------------------------------------------

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

    # -- uploading ---------------------------------------------------------------------------

    def upload_bytes(self, name: str, content: bytes) -> str:
        """Put ``content`` in place as ``name``; returns a note on what was done."""
        fs, folder = self.filesystem()
        with fs.session() as session:
            if self.config.transport == "local":
                session.makedirs(folder)
            final = session.join(folder, name)
            temp = session.join(folder, f".{name}.part")
            present = session.size(final)
            if present is not None:
                if present == len(content) and _same(session, final, name, content):
                    if session.size(temp) is not None:
                        session.delete(temp)
                    return "already in place (an earlier attempt renamed it)"
                raise UploadConflict(
                    f"{fs.description}: {name} already exists with different content "
                    f"({present} bytes); it is never overwritten: move it away to retry"
                )
            session.write_bytes(temp, content)
            written = session.size(temp)
            if written != len(content):
                raise RemoteError(
                    f"{fs.description}: {temp} has {written} bytes after the upload, "
                    f"expected {len(content)}"
                )
            session.rename(temp, final)
            placed = session.size(final)
            if placed != len(content):
                raise RemoteError(
                    f"{fs.description}: {name} has {placed} bytes after the rename, "
                    f"expected {len(content)}"
                )
            return f"uploaded to {fs.description}"

    def upload_once(self, store: Store, worker: str, lease: timedelta) -> db.BatchRow | None:
        """Upload the next batch waiting; returns it (None when nothing was waiting)."""
        with store.write() as conn:
            batch = db.claim_upload(conn, self.name, worker, lease=lease, now=utcnow())
        if batch is None:
            return None
        assert batch.content is not None
        try:
            note = self.upload_bytes(batch.file_name, batch.content)
        except Exception as exc:  # every failure is retried: the batch is fixed
            error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, RemoteError) else str(exc)
            delay = min(
                self.config.backoff_cap, self.config.backoff_base * 2 ** (batch.attempts - 1)
            )
            if isinstance(exc, UploadConflict):
                delay = self.config.backoff_cap
            next_at = utcnow() + timedelta(seconds=random.uniform(delay / 2, delay))
            with store.write() as conn:
                db.failed(conn, batch, worker, error, next_at, utcnow())
            log.warning(
                "upload failed; the same file is tried again",
                sink=self.name,
                batch=batch.id,
                file=batch.file_name,
                attempt=batch.attempts,
                error=error,
                next_attempt_at=next_at.isoformat(),
            )
            return dataclasses.replace(batch, state="failed", last_error=error)
        with store.write() as conn:
            db.uploaded(conn, batch, worker, note, utcnow())
        log.info(
            "batch uploaded",
            sink=self.name,
            batch=batch.id,
            file=batch.file_name,
            entries=batch.entries,
            sha256=batch.sha256,
            note=note,
        )
        return dataclasses.replace(batch, state="uploaded")

    def paused(self, store: Store) -> bool:
        """Whether an operator paused this sink (``pesabridge sinks pause``)."""
        from sqlalchemy import select

        from ..store.schema import sink_state

        with store.read() as conn:
            flag = conn.execute(
                select(sink_state.c.paused).where(sink_state.c.name == self.name)
            ).scalar_one_or_none()
        return bool(flag)

    def tick(self, store: Store, worker: str, lease: timedelta, stop: asyncio.Event) -> None:
        """One look: cut what is due, upload what waits; nothing while paused."""
        if self.paused(store):
            return
        self.due_cuts(store)
        while not stop.is_set():
            batch = self.upload_once(store, worker, lease)
            if batch is None or batch.state != "uploaded":
                break

    async def run(
        self, store: Store, stop: asyncio.Event, *, worker: str, lease: timedelta
    ) -> None:
        """Cut when due and upload what is cut, until ``stop`` is set."""
        log.info("file-drop sink started", sink=self.name, schedule=self.config.schedule)
        while not stop.is_set():
            try:
                await asyncio.to_thread(self.tick, store, worker, lease, stop)
            except Exception:
                log.exception("file-drop sink: cutting or uploading failed; trying again")
            await wait_or_stop(stop, self.config.check_interval)


def _same(session: RemoteSession, path: str, name: str, content: bytes) -> bool:
    """Whether the file at ``path`` holds exactly ``content``."""
    entry = RemoteEntry(path=path, name=name, display=path, size=len(content), mtime_ns=0)
    local = session.local_path(entry)
    if local is not None:
        return local.read_bytes() == content
    with tempfile.TemporaryDirectory(prefix="pesabridge-check-") as folder:
        target = Path(folder) / "existing"
        session.download(entry, target, 0, lambda _done: None)
        return target.read_bytes() == content
