"""Putting a file-drop batch's bytes in place, safely, however often it is tried.

An upload writes a hidden temporary file (``.<name>.part``) beside the target, checks its
size, renames it into place and checks again. A retry after a failure or a crash overwrites
only its own temporary file; if the final name already holds the same bytes (the rename
happened, the process died before recording it) the upload is reported as already in place;
a *different* file under that name is never overwritten: :class:`UploadConflict`.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from ..sources.remotefs import LocalFS, RemoteEntry, RemoteError, RemoteFS, RemoteSession
from .filedrop_config import FileDropConfig


class UploadConflict(RemoteError):
    """A different file already has the batch's name: never overwritten."""


def filesystem(config: FileDropConfig, base_dir: Path) -> tuple[RemoteFS, str]:
    """The access layer's file system and the folder to drop files in."""
    c = config
    if c.transport == "local":
        assert c.path is not None
        folder = c.path if c.path.is_absolute() else base_dir / c.path
        return LocalFS(folder), str(folder)
    transport = c.transport_config()
    if c.transport == "sftp":
        from ..sources.sftp import SftpFS

        return SftpFS(transport, base_dir), transport.remote_dir
    from ..sources.ftp import FtpFS

    return FtpFS(transport, base_dir), transport.remote_dir


def upload_bytes(config: FileDropConfig, base_dir: Path, name: str, content: bytes) -> str:
    """Put ``content`` in place as ``name``; returns a note on what was done."""
    fs, folder = filesystem(config, base_dir)
    with fs.session() as session:
        if config.transport == "local":
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
        _expect_size(session, temp, len(content), f"{fs.description}: {temp}", "the upload")
        session.rename(temp, final)
        _expect_size(session, final, len(content), f"{fs.description}: {name}", "the rename")
        return f"uploaded to {fs.description}"


def _expect_size(session: RemoteSession, path: str, size: int, what: str, after: str) -> None:
    """Raise :class:`RemoteError` unless the file at ``path`` has ``size`` bytes."""
    found = session.size(path)
    if found != size:
        raise RemoteError(f"{what} has {found} bytes after {after}, expected {size}")


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
