"""A narrow file-server interface, and its local-folder implementation.

A file source needs only this from a server: list files (path, size, mtime), download
one from an offset to a local file, rename, delete, check existence, make a folder and
write a small note. FTP, FTPS, SFTP and the local drop folder implement it; the poller in
:mod:`pesabridge.sources.poller` does the rest the same way for all four.

Remote names are untrusted. Each implementation keeps a name in a form that round-trips
to the exact bytes the server gave (``path``), and a printable form (``display``) for the
ledger, logs and local file names.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ..errors import PesabridgeError

Progress = Callable[[int], None]
"""Called with the bytes downloaded so far."""


class RemoteError(PesabridgeError):
    """A file server problem."""


class RemoteUnavailable(RemoteError):
    """The server could not be reached or dropped the connection: retried with backoff."""


class RemoteConfigError(RemoteError):
    """Wrong password, unknown or changed host key, untrusted certificate: retrying the
    same thing cannot help. Reported once; the source is parked until it changes."""


class RemoteFileError(RemoteError):
    """One file cannot be read (refused, vanished); other files still flow."""


@dataclass(frozen=True, slots=True)
class RemoteEntry:
    """A regular file on the server."""

    path: str
    """The implementation's own form of the full path (round-trips to the server's bytes)."""
    name: str
    """The last component, in the same form."""
    display: str
    """Printable full path: for the ledger, logs and people."""
    size: int
    mtime_ns: int

    @property
    def display_name(self) -> str:
        return self.display.rsplit("/", 1)[-1]


class RemoteSession(Protocol):
    """One connection to a server."""

    def list_files(self, root: str, recursive: bool, skip: Sequence[str]) -> list[RemoteEntry]:
        """Regular files under ``root`` (``skip``: folders never descended into)."""
        ...

    def local_path(self, entry: RemoteEntry) -> Path | None:
        """The file itself when it is on this machine already (nothing to download)."""
        ...

    def download(self, entry: RemoteEntry, target: Path, offset: int, progress: Progress) -> None:
        """Append the file's bytes from ``offset`` to ``target``."""
        ...

    def exists(self, path: str) -> bool: ...

    def rename(self, source: str, target: str) -> None: ...

    def delete(self, path: str) -> None: ...

    def makedirs(self, path: str) -> None: ...

    def write_bytes(self, path: str, data: bytes) -> None: ...

    def size(self, path: str) -> int | None:
        """A file's size in bytes, or None when there is no such file (file-drop sinks
        check an upload with it)."""
        ...

    def join(self, folder: str, name: str) -> str:
        """A path in the implementation's form: ``name`` inside ``folder``."""
        ...


class RemoteFS(Protocol):
    """Opens sessions to one server."""

    description: str

    def session(self) -> AbstractContextManager[RemoteSession]: ...


_UNSAFE = re.compile(r"[^A-Za-z0-9._ ()+,=@#&-]")


def printable(raw: bytes) -> str:
    """Bytes of a name as a printable string: undecodable bytes and control characters
    written as ``\\xNN`` escapes (so the result is valid UTF-8 text for any database)."""
    text = raw.decode("utf-8", errors="backslashreplace")
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def safe_local_name(display_name: str, limit: int = 120) -> str:
    """A local file name for an untrusted remote name: one path component, no traversal,
    no leading dot, only plain characters, the extension kept (parsers look at it)."""
    name = display_name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _UNSAFE.sub("_", name).strip(" .")
    if not name:
        name = "file"
    if len(name) > limit:
        stem, dot, suffix = name.rpartition(".")
        suffix = suffix[:16] if dot else ""
        name = (stem if dot else name)[: limit - len(suffix) - 1] + ("." + suffix if suffix else "")
    return name


class LocalFS:
    """A folder on this machine (the drop folder): files are read where they are."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.description = str(root)

    @contextmanager
    def session(self) -> Iterator[LocalFS]:
        self.root.mkdir(parents=True, exist_ok=True)
        yield self

    def list_files(self, root: str, recursive: bool, skip: Sequence[str]) -> list[RemoteEntry]:
        skipped = {os.path.normpath(s) for s in skip}
        found: list[RemoteEntry] = []
        folders = [root]
        while folders:
            folder = folders.pop()
            try:
                scan = list(os.scandir(folder))
            except FileNotFoundError:
                continue
            for item in scan:
                if item.is_dir(follow_symlinks=False):
                    if (
                        recursive
                        and os.path.normpath(item.path) not in skipped
                        and not item.name.startswith(".")
                    ):
                        folders.append(item.path)
                    continue
                if not item.is_file(follow_symlinks=False):
                    continue
                stat = item.stat(follow_symlinks=False)
                found.append(
                    RemoteEntry(
                        path=item.path,
                        name=item.name,
                        display=printable(os.fsencode(item.path)),
                        size=stat.st_size,
                        mtime_ns=stat.st_mtime_ns,
                    )
                )
        return found

    def local_path(self, entry: RemoteEntry) -> Path | None:
        return Path(entry.path)

    def download(self, entry: RemoteEntry, target: Path, offset: int, progress: Progress) -> None:
        raise NotImplementedError("local files are read in place")

    def exists(self, path: str) -> bool:
        return os.path.lexists(path)

    def rename(self, source: str, target: str) -> None:
        shutil.move(source, target)

    def delete(self, path: str) -> None:
        os.unlink(path)

    def makedirs(self, path: str) -> None:
        os.makedirs(path, exist_ok=True)

    def write_bytes(self, path: str, data: bytes) -> None:
        Path(path).write_bytes(data)

    def size(self, path: str) -> int | None:
        try:
            return os.stat(path).st_size
        except FileNotFoundError:
            return None

    def join(self, folder: str, name: str) -> str:
        return os.path.join(folder, name)
