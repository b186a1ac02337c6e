"""A drop folder: statement files appear, are ingested once, and move to done/ or failed/.

A file is taken only when its size and modification time have not changed for
``stable_for`` seconds (or its producer wrote a ``NAME.done`` marker), so a file still
being copied in is never read half-written. The file ledger keys on content (sha256): the
same file dropped again, even renamed, is recognised and not ingested twice.

The folder is the local member of the file-source family: it shares the poller of
:mod:`pesabridge.sources.poller` with the FTP, FTPS and SFTP sources, reading files in
place instead of downloading them.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from ..config import ComponentConfig
from .base import SourceContext
from .file_config import DEFAULT_INCLUDE, FileSourceConfig
from .file_disposition import Disposition
from .poller import FilePoller
from .remotefs import LocalFS


class FolderSourceConfig(FileSourceConfig):
    """``type: folder``."""

    type: Literal["folder"] = "folder"
    path: Path
    include: list[str] = DEFAULT_INCLUDE
    poll_interval: float = Field(default=5.0, gt=0)
    stable_for: float = Field(default=5.0, ge=0)
    """Seconds a file's size and mtime must stay unchanged before it is read."""
    done_dir: Path | None = None
    """Where ingested files go; ``<path>/done`` by default."""
    failed_dir: Path | None = None
    """Where unreadable files go; ``<path>/failed`` by default."""


class FolderSource(FilePoller):
    """Polls a local folder for statement files."""

    Config: ClassVar[type[ComponentConfig]] = FolderSourceConfig

    def __init__(self, config: FolderSourceConfig, context: SourceContext) -> None:
        self.path = context.resolve(config.path)
        self.done_dir = context.resolve(config.done_dir) if config.done_dir else self.path / "done"
        self.failed_dir = (
            context.resolve(config.failed_dir) if config.failed_dir else self.path / "failed"
        )
        super().__init__(
            config,
            context,
            LocalFS(self.path),
            root=str(self.path),
            disposition=Disposition(
                on_success="move",
                success_dir=str(self.done_dir),
                on_failure="move",
                failure_dir=str(self.failed_dir),
            ),
            work_dir=self.path / ".work",
        )
