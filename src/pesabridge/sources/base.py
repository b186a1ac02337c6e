"""The source interfaces: pollers (folders, FTP, SFTP) and callback endpoints."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Protocol

from starlette.routing import BaseRoute

from ..config import ComponentConfig
from ..routing import Routing
from ..store import Store

if TYPE_CHECKING:
    from ..store.group import GroupCommitter


@dataclass(frozen=True, slots=True)
class SourceContext:
    """What a source needs from the running system."""

    store: Store
    routing: Routing
    base_dir: Path = Path(".")
    committer: GroupCommitter | None = None
    """Shared by callback sources: concurrent callbacks commit together (one fsync)."""
    after_statement: Callable[[int, Path | None], None] | None = None
    """Called by file sources with a statement file's ledger id (and its local copy) once
    it is ingested: reconciliation hooks in here (see :mod:`pesabridge.reconcile`)."""

    def resolve(self, path: Path) -> Path:
        """A config path, relative to the config file's folder."""
        return path if path.is_absolute() else (self.base_dir / path)


class PollingSource(Protocol):
    """A source that looks for new input on a schedule (a folder, an FTP server)."""

    Config: ClassVar[type[ComponentConfig]]
    name: str

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until ``stop`` is set."""
        ...


class CallbackSource(Protocol):
    """A source that providers push to over HTTP."""

    Config: ClassVar[type[ComponentConfig]]
    name: str

    def routes(self) -> Sequence[BaseRoute]:
        """The HTTP routes this source answers."""
        ...
