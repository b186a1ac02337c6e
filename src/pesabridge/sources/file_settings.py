"""From a server source's configuration (ftp, ftps, sftp) to its poller's settings.

``remote_dir``, ``on_success``/``archive_dir``, ``on_failure``/``error_dir``, ``work_dir``
and ``backoff_max`` become the keyword arguments of
:class:`~pesabridge.sources.poller.FilePoller`; folders are resolved against the remote
directory, the local work directory against the configuration file's folder.
"""

from __future__ import annotations

import posixpath
from pathlib import Path
from typing import Any

from .base import SourceContext
from .file_config import RemoteSourceConfig
from .file_disposition import Disposition


def default_work_dir(context: SourceContext, name: str, configured: Path | None) -> Path:
    """Where a source's downloads in progress live."""
    if configured is not None:
        return context.resolve(configured)
    return context.resolve(Path(".pesabridge") / "work" / name)


def remote_poller_settings(config: RemoteSourceConfig, context: SourceContext) -> dict[str, Any]:
    """The FilePoller settings every server source (ftp, ftps, sftp) derives from its config."""
    return {
        "root": posixpath.normpath(config.remote_dir),
        "disposition": remote_disposition(config),
        "work_dir": default_work_dir(context, config.name, config.work_dir),
        "backoff_max": config.backoff_max,
    }


def remote_disposition(config: RemoteSourceConfig) -> Disposition:
    return Disposition(
        on_success="move" if config.on_success == "archive" else config.on_success,
        success_dir=config.remote_path(config.archive_dir) if config.archive_dir else None,
        on_failure=config.on_failure,
        failure_dir=config.remote_path(config.error_dir) if config.error_dir else None,
    )
