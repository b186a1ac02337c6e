"""File-drop sinks: statements (camt.053, MT940, OFX, CSV) dropped in a folder or on an
FTP, FTPS or SFTP server, in batches.

Deliveries to a file-drop sink are not posted one by one. A *cutter*
(:mod:`.filedrop_cut`) takes the sink's due deliveries on a schedule and/or every ``every``
transactions and fixes them as batches: name, bytes and sha256 stored in the ledger, never
changed afterwards. This module is the sink itself: its loop, which cuts what is due and
uploads what is cut (:mod:`.filedrop_upload`: a temporary name, a rename, never
overwriting a different file), then marks the batch uploaded and all its deliveries
delivered in one transaction; a failed upload is retried with backoff, with the same bytes
under the same name. The configuration is in :mod:`.filedrop_config`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from datetime import timedelta
from pathlib import Path
from typing import ClassVar

import structlog

from ..aio import wait_or_stop
from ..config import ComponentConfig
from ..errors import DeliveryError
from ..sources.remotefs import RemoteError
from ..store import Claimed, Store, utcnow
from ..store import batches as db
from . import filedrop_upload
from .base import Delivered
from .filedrop_config import FileDropConfig
from .filedrop_cut import Cutter
from .filedrop_upload import UploadConflict

log = structlog.get_logger("pesabridge.sinks.filedrop")


class FileDropSink:
    """A back office that takes statement files; see the module documentation."""

    Config: ClassVar[type[ComponentConfig]] = FileDropConfig
    batched: ClassVar[bool] = True
    """Its deliveries are cut into batches here, never claimed by the delivery worker."""

    def __init__(self, config: FileDropConfig, base_dir: Path = Path(".")) -> None:
        self.config = config
        self.name = config.name
        self.base_dir = base_dir
        self.cutter = Cutter(config)
        """When cuts are due and what each one fixes (``sink.cutter.cut``, ``due_cuts``)."""

    # -- the Sink protocol: never used one by one --------------------------------------

    async def deliver(self, claimed: Claimed) -> Delivered:
        raise DeliveryError(
            f"{self.name} is a file-drop sink: its deliveries are posted in batches",
            retryable=True,
        )

    async def close(self) -> None:
        return None

    def upload_once(self, store: Store, worker: str, lease: timedelta) -> db.BatchRow | None:
        """Upload the next batch waiting; returns it (None when nothing was waiting)."""
        with store.write() as conn:
            batch = db.claim_upload(conn, self.name, worker, lease=lease, now=utcnow())
        if batch is None:
            return None
        assert batch.content is not None
        try:
            note = filedrop_upload.upload_bytes(
                self.config, self.base_dir, batch.file_name, batch.content
            )
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

    # -- the loop ------------------------------------------------------------------------------

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
        self.cutter.due_cuts(store)
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
