"""FTP and FTPS (explicit TLS) statement sources, on the standard library's ftplib.

FTPS upgrades the control connection with ``AUTH TLS`` and protects the data connections
(``PROT P``); the server's certificate is verified against the system's CAs or
``ca_file`` unless ``verify_tls: false``, which logs a warning at every start. Names are
kept in Latin-1 internally, which maps every byte to one character, so a file with odd
bytes in its name can still be downloaded, renamed and deleted exactly.
"""

from __future__ import annotations

import contextlib
import ftplib
import posixpath
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

import structlog

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

log = structlog.get_logger("pesabridge.sources.ftp")

_TRANSIENT = (OSError, EOFError, ftplib.error_temp, ftplib.error_reply, ftplib.error_proto)


class FtpSourceConfig(RemoteSourceConfig):
    """``type: ftp``."""

    type: Literal["ftp"] = "ftp"
    passive: bool = True
    binary: bool = True
    """Binary transfers (``TYPE I``); ASCII mode cannot resume or check the size."""


class FtpsSourceConfig(RemoteSourceConfig):
    """``type: ftps`` — FTP over explicit TLS."""

    type: Literal["ftps"] = "ftps"
    passive: bool = True
    binary: bool = True
    verify_tls: bool = True
    """Verify the server's certificate and name. Turn off only for testing."""
    ca_file: Path | None = None
    """CA bundle (or the server's own self-signed certificate) to trust."""


class _FTP_TLS(ftplib.FTP_TLS):
    """FTP_TLS that reuses the control connection's TLS session on data connections
    (vsftpd, FileZilla Server and others require it)."""

    def ntransfercmd(
        self, cmd: str, rest: int | str | None = None
    ) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)  # noqa: S321 - FTP is the point
        if self._prot_p:  # type: ignore[attr-defined]
            session = getattr(self.sock, "session", None)
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
        return conn, size


def _wire(text: str) -> str:
    """A display-form (UTF-8) path as the Latin-1 wire form."""
    return text.encode("utf-8").decode("latin-1")


def _show(wire: str) -> str:
    return printable(wire.encode("latin-1"))


def _mtime_ns(modify: str) -> int:
    """``YYYYMMDDHHMMSS[.fff]`` (UTC) as nanoseconds since the epoch."""
    whole, _, fraction = modify.partition(".")
    moment = datetime.strptime(whole, "%Y%m%d%H%M%S").replace(tzinfo=UTC)
    nanos = int((fraction + "000000000")[:9]) if fraction else 0
    return int(moment.timestamp()) * 1_000_000_000 + nanos


def _code(exc: BaseException) -> str:
    return str(exc)[:3]


class FtpSession:
    """One logged-in FTP(S) connection."""

    def __init__(self, ftp: ftplib.FTP, binary: bool) -> None:
        self.ftp = ftp
        self.binary = binary
        self._mlsd = True

    def list_files(self, root: str, recursive: bool, skip: Sequence[str]) -> list[RemoteEntry]:
        skipped = {posixpath.normpath(_wire(s)) for s in skip}
        found: list[RemoteEntry] = []
        folders = [_wire(root)]
        while folders:
            folder = folders.pop()
            for name, facts in self._entries(folder):
                if name in (".", "..") or "/" in name or "\0" in name:
                    continue
                if "\r" in name or "\n" in name:
                    log.warning("name cannot be sent over FTP; skipped", name=_show(name))
                    continue
                path = posixpath.normpath(posixpath.join(folder, name))
                kind = facts.get("type", "file").lower()
                if kind == "dir":
                    if recursive and path not in skipped and not name.startswith("."):
                        folders.append(path)
                    continue
                if kind != "file" or "size" not in facts or "modify" not in facts:
                    continue
                found.append(
                    RemoteEntry(
                        path=path,
                        name=name,
                        display=_show(path),
                        size=int(facts["size"]),
                        mtime_ns=_mtime_ns(facts["modify"]),
                    )
                )
        return found

    def _entries(self, folder: str) -> list[tuple[str, dict[str, str]]]:
        if self._mlsd:
            try:
                return list(self.ftp.mlsd(folder, facts=["type", "size", "modify"]))
            except ftplib.error_perm as exc:
                if _code(exc) not in ("500", "501", "502", "504"):
                    raise RemoteFileError(f"cannot list {_show(folder)}: {exc}") from None
                self._mlsd = False  # an old server: NLST, then SIZE and MDTM per file
        entries: list[tuple[str, dict[str, str]]] = []
        try:
            names = self.ftp.nlst(folder)
        except ftplib.error_perm as exc:
            if _code(exc) == "550":  # an empty folder, on some servers
                return []
            raise
        # SIZE is refused in ASCII mode by many servers (pyftpdlib, vsftpd): binary first.
        self.ftp.voidcmd("TYPE I")
        for listed in names:
            name = posixpath.basename(listed)
            path = posixpath.join(folder, name)
            try:
                size = self.ftp.size(path)
                modify = self.ftp.sendcmd(f"MDTM {path}").split()[-1]
            except ftplib.error_perm:
                continue  # a folder, or gone
            if size is None:
                continue
            entries.append((name, {"type": "file", "size": str(size), "modify": modify}))
        return entries

    def local_path(self, entry: RemoteEntry) -> Path | None:
        return None

    def download(self, entry: RemoteEntry, target: Path, offset: int, progress: Progress) -> None:
        if not self.binary:
            self._download_ascii(entry, target, progress)
            return
        done = offset
        with target.open("ab" if offset else "wb") as out:

            def write(chunk: bytes) -> None:
                nonlocal done
                out.write(chunk)
                done += len(chunk)
                progress(done)

            try:
                self.ftp.retrbinary(
                    f"RETR {entry.path}", write, blocksize=1 << 16, rest=offset or None
                )
            except ftplib.error_perm as exc:
                if offset and _code(exc) in ("500", "501", "502", "504"):  # no REST: restart
                    out.truncate(0)
                    out.seek(0)
                    done = 0
                    self.ftp.retrbinary(f"RETR {entry.path}", write, blocksize=1 << 16)
                else:
                    raise RemoteFileError(f"server refused the download: {exc}") from None

    def _download_ascii(self, entry: RemoteEntry, target: Path, progress: Progress) -> None:
        done = 0
        with target.open("wb") as out:

            def write(line: str) -> None:
                nonlocal done
                data = line.encode("latin-1") + b"\n"
                out.write(data)
                done += len(data)
                progress(done)

            try:
                self.ftp.retrlines(f"RETR {entry.path}", write)
            except ftplib.error_perm as exc:
                raise RemoteFileError(f"server refused the download: {exc}") from None

    def exists(self, path: str) -> bool:
        try:
            self.ftp.sendcmd(f"MLST {path}")
            return True
        except ftplib.error_perm as exc:
            if _code(exc) not in ("500", "501", "502", "504"):
                return False
        try:
            self.ftp.size(path)
            return True
        except ftplib.error_perm:
            return False

    def rename(self, source: str, target: str) -> None:
        self.ftp.rename(source, target)

    def delete(self, path: str) -> None:
        self.ftp.delete(path)

    def makedirs(self, path: str) -> None:
        current = "/" if path.startswith("/") else ""
        for part in [p for p in path.split("/") if p]:
            current = posixpath.join(current, part) if current else part
            # exists already (or refused: the rename then says so)
            with contextlib.suppress(ftplib.error_perm):
                self.ftp.mkd(current)

    def write_bytes(self, path: str, data: bytes) -> None:
        import io

        self.ftp.storbinary(f"STOR {path}", io.BytesIO(data))

    def size(self, path: str) -> int | None:
        try:
            return self.ftp.size(path)
        except ftplib.error_perm as exc:
            if _code(exc) == "550":
                return None
            raise RemoteFileError(f"cannot read the size of {_show(path)}: {exc}") from None

    def join(self, folder: str, name: str) -> str:
        return posixpath.join(folder, name)


class FtpFS:
    """Connects to an FTP or FTPS server."""

    def __init__(self, config: FtpSourceConfig | FtpsSourceConfig, base_dir: Path) -> None:
        self.config = config
        self.tls = isinstance(config, FtpsSourceConfig)
        self.port = config.port or 21
        scheme = "ftps" if self.tls else "ftp"
        self.description = f"{scheme}://{config.user}@{config.host}:{self.port}"
        self.context: ssl.SSLContext | None = None
        if isinstance(config, FtpsSourceConfig):
            if config.verify_tls:
                cafile = None
                if config.ca_file is not None:
                    ca = (
                        config.ca_file
                        if config.ca_file.is_absolute()
                        else base_dir / config.ca_file
                    )
                    cafile = str(ca)
                self.context = ssl.create_default_context(cafile=cafile)
            else:
                log.warning(
                    "TLS certificate verification is OFF: anyone on the path can read the "
                    "statements and the password",
                    source=config.name,
                    host=config.host,
                )
                self.context = ssl.create_default_context()
                self.context.check_hostname = False
                self.context.verify_mode = ssl.CERT_NONE

    def _connect(self) -> ftplib.FTP:
        c = self.config
        ftp: ftplib.FTP
        if self.tls:
            ftp = _FTP_TLS(context=self.context, timeout=c.timeout, encoding="latin-1")
        else:
            ftp = ftplib.FTP(timeout=c.timeout, encoding="latin-1")  # noqa: S321 - configured
        password = c.password.get_secret_value() if c.password else ""
        try:
            ftp.connect(c.host, self.port)
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.auth()
            ftp.login(_wire(c.user), _wire(password))
            if isinstance(ftp, ftplib.FTP_TLS):
                ftp.prot_p()
            ftp.set_pasv(c.passive)
            if c.binary:
                ftp.voidcmd("TYPE I")
        except ssl.SSLCertVerificationError as exc:
            _close(ftp)
            raise RemoteConfigError(
                f"{self.description}: the server's TLS certificate is not trusted "
                f"({exc.verify_message}); set ca_file to its CA"
            ) from None
        except ftplib.error_perm as exc:
            _close(ftp)
            if _code(exc) == "530":
                raise RemoteConfigError(
                    f"{self.description}: login refused ({exc}); check user and password"
                ) from None
            raise RemoteConfigError(
                f"{self.description}: server refused the session: {exc}"
            ) from None
        except _TRANSIENT as exc:
            _close(ftp)
            raise RemoteUnavailable(f"{self.description}: {_describe(exc)}") from None
        return ftp

    @contextmanager
    def session(self) -> Iterator[FtpSession]:
        ftp = self._connect()
        try:
            yield FtpSession(ftp, self.config.binary)
        except _TRANSIENT as exc:
            raise RemoteUnavailable(f"{self.description}: {_describe(exc)}") from None
        finally:
            _close(ftp)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _close(ftp: ftplib.FTP) -> None:
    try:
        ftp.quit()
    except Exception:
        ftp.close()


class _FtpSourceBase(FilePoller):
    def __init__(self, config: Any, context: SourceContext) -> None:
        fs = FtpFS(config, context.base_dir)
        super().__init__(
            config,
            context,
            fs,
            **remote_poller_settings(config, context),
            verify_size=config.binary,
            origin=_origin(fs.description),
        )


def _origin(description: str) -> Callable[[RemoteEntry], str]:
    return lambda entry: f"{description}/{entry.display.lstrip('/')}"


class FtpSource(_FtpSourceBase):
    """Polls an FTP server for statement files."""

    Config: ClassVar[type[ComponentConfig]] = FtpSourceConfig


class FtpsSource(_FtpSourceBase):
    """Polls an FTPS (explicit TLS) server for statement files."""

    Config: ClassVar[type[ComponentConfig]] = FtpsSourceConfig
