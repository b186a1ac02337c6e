"""The file-drop sink's configuration (``type: file-drop``): where files go (a local folder,
or an FTP, FTPS or SFTP server with the sources' connection settings), which statement
encoder writes them, and when batches are cut. See ``docs/sinks/file-drop.md``."""

from __future__ import annotations

import inspect
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, PrivateAttr, SecretStr, ValidationError, model_validator

from ..config import ComponentConfig
from ..encoders.registry import get_encoder
from ..errors import PesabridgeError
from .cron import Cron, CronError

STATEMENT_ENCODERS = {"camt053": "xml", "mt940": "sta", "ofx": "ofx", "csv": "csv"}
"""The statement encoders a file-drop sink can use, and their files' extensions."""


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
