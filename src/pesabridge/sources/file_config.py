"""Configuration of the file sources (folder, ftp, ftps, sftp): what each one accepts."""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any, Literal

from pydantic import ByteSize, Field, SecretStr, model_validator

from ..config import ComponentConfig
from ..errors import UnknownFormat
from ..formats import get_parser
from ..formats.registry import FormatOptionsError

DEFAULT_INCLUDE = ["*.csv", "*.CSV", "*.xlsx", "*.XLSX", "*.txt"]
DEFAULT_EXCLUDE = ["*.part", "*.tmp", "*.filepart", "~*"]


class FileSourceConfig(ComponentConfig):
    """What every file source (folder, ftp, ftps, sftp) accepts."""

    format: str = "auto"
    format_options: dict[str, Any] = {}
    """Passed to the parser (delimiter, encoding ...)."""
    include: list[str] = DEFAULT_INCLUDE
    exclude: list[str] = DEFAULT_EXCLUDE
    recursive: bool = False
    poll_interval: float = Field(default=60.0, gt=0)
    stable_for: float = Field(default=10.0, ge=0)
    """Seconds a file's size and mtime must stay unchanged before it is read."""
    done_markers: list[str] = [".done", ".ok"]
    """Suffixes of marker files: ``NAME.done`` beside ``NAME`` says ``NAME`` is complete."""
    require_done_marker: bool = False
    """Take only files whose producer wrote a marker."""
    max_files_per_poll: int = Field(default=100, ge=1)
    order: Literal["oldest", "newest", "name"] = "oldest"
    max_file_size: ByteSize = ByteSize(512 * 1024 * 1024)
    """Larger files are recorded as failed, never downloaded."""

    @model_validator(mode="after")
    def _markers_are_suffixes(self) -> FileSourceConfig:
        for marker in self.done_markers:
            if not marker or "/" in marker:
                raise ValueError(f"done_markers: {marker!r} is not a file name suffix")
        return self

    @model_validator(mode="after")
    def _format_options_valid(self) -> FileSourceConfig:
        # Checked when the config is loaded: bad options are a configuration error, not a
        # reason to fail (and never retry) every file the source sees.
        if self.format == "auto":
            if self.format_options:
                raise ValueError("format_options: given with format auto; name the format")
            return self
        try:
            get_parser(self.format, self.format_options or None)
        except FormatOptionsError as exc:
            raise ValueError("; ".join(exc.problems)) from None
        except UnknownFormat as exc:
            raise ValueError(f"format: {exc}") from None
        return self


class RemoteSourceConfig(FileSourceConfig):
    """What ftp, ftps and sftp sources accept beyond :class:`FileSourceConfig`."""

    host: str = Field(min_length=1)
    port: int = Field(default=0, ge=0, le=65535)
    """0: the protocol's default port."""
    user: str = Field(min_length=1)
    password: SecretStr | None = None
    remote_dir: str = "."
    timeout: float = Field(default=30.0, gt=0)
    on_success: Literal["leave", "archive", "delete"] = "leave"
    archive_dir: str | None = None
    """Where ``on_success: archive`` moves files; relative to ``remote_dir``."""
    on_failure: Literal["leave", "move"] = "leave"
    error_dir: str | None = None
    """Where ``on_failure: move`` moves files (with ``NAME.error.txt``); relative to
    ``remote_dir``."""
    work_dir: Path | None = None
    """Local folder for downloads in progress; ``.pesabridge/work/<name>`` by default."""
    backoff_max: float = Field(default=600.0, gt=0)
    """Longest wait after connection failures; a parked source retries this often."""
    poll_interval: float = Field(default=60.0, gt=0)
    stable_for: float = Field(default=10.0, ge=0)

    @model_validator(mode="after")
    def _dirs_for_actions(self) -> RemoteSourceConfig:
        if self.on_success == "archive" and not self.archive_dir:
            raise ValueError("on_success: archive needs archive_dir")
        if self.on_failure == "move" and not self.error_dir:
            raise ValueError("on_failure: move needs error_dir")
        return self

    def remote_path(self, folder: str) -> str:
        return posixpath.normpath(posixpath.join(self.remote_dir, folder))
