"""SFTP statement sources, on asyncssh.

The server's host key must be pinned: by a ``known_hosts`` file or by its SHA256
fingerprint. An unknown or changed key refuses the connection and says which key the
server offered; nothing is ever trusted on first use. Authentication is by password or by
private key (with an optional passphrase); secrets come from ``${ENV}`` or ``${file:...}``
references and are held as ``SecretStr``.

The poller is synchronous (it runs in a worker thread); each poll opens one connection
on a private event loop and closes it at the end. Names are handled as bytes on the wire
and kept with ``surrogateescape`` internally, so odd bytes round-trip exactly.
"""

from __future__ import annotations

import asyncio
import posixpath
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

import asyncssh
import structlog
from pydantic import SecretStr, model_validator

from ..config import ComponentConfig
from .base import SourceContext
from .file_config import RemoteSourceConfig
from .file_settings import remote_poller_settings
from .poller import FilePoller
from .remotefs import (
    Progress,
    RemoteConfigError,
    RemoteEntry,
    RemoteFileError,
    RemoteUnavailable,
    printable,
)

T = TypeVar("T")
log = structlog.get_logger("pesabridge.sources.sftp")

_TRANSIENT = (OSError, EOFError, TimeoutError, asyncssh.DisconnectError, asyncssh.ChannelOpenError)
_CHUNK = 1 << 18


class SftpSourceConfig(RemoteSourceConfig):
    """``type: sftp``."""

    type: Literal["sftp"] = "sftp"
    private_key: Path | None = None
    passphrase: SecretStr | None = None
    known_hosts: Path | None = None
    """An OpenSSH known_hosts file holding the server's key (``[host]:port`` when the
    port is not 22)."""
    host_key_fingerprint: str | None = None
    """The server's key as ``SHA256:...`` (``ssh-keygen -lf`` prints it)."""

    @model_validator(mode="after")
    def _pinned_and_authenticated(self) -> SftpSourceConfig:
        if (self.known_hosts is None) == (self.host_key_fingerprint is None):
            raise ValueError(
                "pin the server's host key: give exactly one of known_hosts or "
                "host_key_fingerprint (a key is never trusted on first use)"
            )
        if self.host_key_fingerprint is not None and not self.host_key_fingerprint.startswith(
            "SHA256:"
        ):
            raise ValueError("host_key_fingerprint: must look like SHA256:... (ssh-keygen -lf)")
        if self.password is None and self.private_key is None:
            raise ValueError("give a password or a private_key")
        return self


def _wire(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


def _text(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


class _PinningClient(asyncssh.SSHClient):
    """Accepts the host key only if it matches the pinned fingerprint; remembers the
    key offered either way, for the error message."""

    def __init__(self, fingerprint: str | None) -> None:
        self.fingerprint = fingerprint
        self.offered: str | None = None

    def validate_host_public_key(
        self, host: str, addr: str, port: int, key: asyncssh.SSHKey
    ) -> bool:
        self.offered = f"{key.get_algorithm()} {key.get_fingerprint('sha256')}"
        return self.fingerprint is not None and key.get_fingerprint("sha256") == self.fingerprint


class SftpSession:
    """One connection and SFTP channel, driven on a private event loop."""

    def __init__(self, fs: SftpFS) -> None:
        self.fs = fs
        self.loop = asyncio.new_event_loop()
        self.conn: asyncssh.SSHClientConnection | None = None
        self.sftp: asyncssh.SFTPClient | None = None

    def run(self, work: Callable[[], Awaitable[T]], timeout: float | None = None) -> T:
        async def bounded() -> T:
            return await asyncio.wait_for(work(), timeout)

        return self.loop.run_until_complete(bounded())

    def open(self) -> None:
        c = self.fs.config
        client = _PinningClient(c.host_key_fingerprint)
        options: dict[str, Any] = {
            "username": c.user,
            "known_hosts": (
                str(self.fs.resolve(c.known_hosts)) if c.known_hosts is not None else ([], [], [])
            ),
            "client_factory": lambda: client,
            "agent_path": None,
            "config": [],
            "password": c.password.get_secret_value() if c.password else None,
            "client_keys": None,
            "connect_timeout": c.timeout,
        }
        if c.private_key is not None:
            options["client_keys"] = [str(self.fs.resolve(c.private_key))]
            if c.passphrase is not None:
                options["passphrase"] = c.passphrase.get_secret_value()

        async def connect() -> None:
            self.conn = await asyncssh.connect(c.host, self.fs.port, **options)
            self.sftp = await self.conn.start_sftp_client()

        where = self.fs.description
        try:
            self.run(connect, c.timeout * 2)
        except asyncssh.HostKeyNotVerifiable as exc:
            offered = f"; the server offered {client.offered}" if client.offered else ""
            pinned = (
                f"known_hosts {c.known_hosts}"
                if c.known_hosts is not None
                else f"fingerprint {c.host_key_fingerprint}"
            )
            raise RemoteConfigError(
                f"{where}: host key refused — it does not match the pinned {pinned}{offered}. "
                "If the server's key really changed, verify the new key with its owner and "
                f"update the configuration ({exc.reason})"
            ) from None
        except asyncssh.PermissionDenied:
            raise RemoteConfigError(
                f"{where}: login refused; check user, password or private key"
            ) from None
        except (asyncssh.KeyImportError, asyncssh.KeyEncryptionError) as exc:
            raise RemoteConfigError(f"{where}: cannot use the private key: {exc}") from None
        except FileNotFoundError as exc:
            raise RemoteConfigError(f"{where}: {exc.strerror}: {exc.filename}") from None
        except _TRANSIENT as exc:
            raise RemoteUnavailable(f"{where}: {_describe(exc)}") from None

    def close(self) -> None:
        try:
            if self.sftp is not None:
                self.sftp.exit()
            if self.conn is not None:
                self.conn.close()
                self.run(self.conn.wait_closed, 5)
        except Exception:  # closing a dead connection: nothing left to do
            log.debug("closing the connection failed", source=self.fs.config.name)
        finally:
            self.loop.close()

    @property
    def client(self) -> asyncssh.SFTPClient:
        assert self.sftp is not None
        return self.sftp

    # -- the RemoteSession interface ---------------------------------------------------

    def list_files(self, root: str, recursive: bool, skip: Sequence[str]) -> list[RemoteEntry]:
        skipped = {posixpath.normpath(s) for s in skip}
        found: list[RemoteEntry] = []
        folders = [root]
        while folders:
            folder = folders.pop()

            async def scan(folder: str = folder) -> list[asyncssh.SFTPName]:
                return [name async for name in self.client.scandir(_wire(folder))]

            try:
                names = self.run(scan, self.fs.config.timeout)
            except asyncssh.SFTPNoSuchFile:
                continue
            except asyncssh.SFTPError as exc:
                raise RemoteFileError(f"cannot list {printable(_wire(folder))}: {exc}") from None
            for item in names:
                raw = item.filename if isinstance(item.filename, bytes) else _wire(item.filename)
                if raw in (b".", b"..") or b"/" in raw or b"\0" in raw:
                    continue
                name = _text(raw)
                path = posixpath.normpath(posixpath.join(folder, name))
                attrs = item.attrs
                if attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY:
                    if recursive and path not in skipped and not name.startswith("."):
                        folders.append(path)
                    continue
                if attrs.type != asyncssh.FILEXFER_TYPE_REGULAR or attrs.size is None:
                    continue
                seconds = attrs.mtime or 0
                nanos = attrs.mtime_ns if attrs.mtime_ns is not None else seconds * 10**9
                found.append(
                    RemoteEntry(
                        path=path,
                        name=name,
                        display=printable(_wire(path)),
                        size=attrs.size,
                        mtime_ns=int(nanos),
                    )
                )
        return found

    def local_path(self, entry: RemoteEntry) -> Path | None:
        return None

    def download(self, entry: RemoteEntry, target: Path, offset: int, progress: Progress) -> None:
        async def fetch() -> None:
            done = offset
            async with self.client.open(_wire(entry.path), "rb", encoding=None) as remote:
                with target.open("ab" if offset else "wb") as out:
                    while True:
                        chunk = await asyncio.wait_for(
                            remote.read(_CHUNK, done), self.fs.config.timeout
                        )
                        if not chunk:
                            break
                        assert isinstance(chunk, bytes)
                        out.write(chunk)
                        done += len(chunk)
                        progress(done)

        try:
            self.run(fetch)
        except (asyncssh.SFTPNoSuchFile, asyncssh.SFTPPermissionDenied) as exc:
            raise RemoteFileError(f"server refused the download: {exc.reason}") from None
        except asyncssh.SFTPConnectionLost as exc:
            raise RemoteUnavailable(f"{self.fs.description}: {exc.reason}") from None
        except asyncssh.SFTPError as exc:
            raise RemoteFileError(f"download failed: {exc.reason}") from None

    def exists(self, path: str) -> bool:
        return bool(self.run(lambda: self.client.exists(_wire(path)), self.fs.config.timeout))

    def rename(self, source: str, target: str) -> None:
        self.run(lambda: self.client.rename(_wire(source), _wire(target)), self.fs.config.timeout)

    def delete(self, path: str) -> None:
        self.run(lambda: self.client.remove(_wire(path)), self.fs.config.timeout)

    def makedirs(self, path: str) -> None:
        self.run(lambda: self.client.makedirs(_wire(path), exist_ok=True), self.fs.config.timeout)

    def write_bytes(self, path: str, data: bytes) -> None:
        async def put() -> None:
            async with self.client.open(_wire(path), "wb", encoding=None) as remote:
                await remote.write(data)

        self.run(put, self.fs.config.timeout)

    def size(self, path: str) -> int | None:
        try:
            attrs = self.run(lambda: self.client.stat(_wire(path)), self.fs.config.timeout)
        except asyncssh.SFTPNoSuchFile:
            return None
        return attrs.size

    def join(self, folder: str, name: str) -> str:
        return posixpath.join(folder, name)


class SftpFS:
    """Connects to an SFTP server."""

    def __init__(self, config: SftpSourceConfig, base_dir: Path) -> None:
        self.config = config
        self.base_dir = base_dir
        self.port = config.port or 22
        self.description = f"sftp://{config.user}@{config.host}:{self.port}"

    def resolve(self, path: Path) -> Path:
        return path if path.is_absolute() else self.base_dir / path

    @contextmanager
    def session(self) -> Iterator[SftpSession]:
        session = SftpSession(self)
        try:
            session.open()
        except BaseException:
            session.close()
            raise
        try:
            yield session
        except (asyncssh.SFTPConnectionLost, *_TRANSIENT) as exc:
            raise RemoteUnavailable(f"{self.description}: {_describe(exc)}") from None
        finally:
            session.close()


def _describe(exc: BaseException) -> str:
    text = str(getattr(exc, "reason", "") or exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class SftpSource(FilePoller):
    """Polls an SFTP server for statement files."""

    Config: ClassVar[type[ComponentConfig]] = SftpSourceConfig

    def __init__(self, config: SftpSourceConfig, context: SourceContext) -> None:
        fs = SftpFS(config, context.base_dir)
        super().__init__(
            config,
            context,
            fs,
            **remote_poller_settings(config, context),
            origin=lambda entry: f"{fs.description}/{entry.display.lstrip('/')}",
        )
