"""Shared fixtures: databases (SQLite and the real PostgreSQL), sample files.

PostgreSQL tests skip when no server answers, unless PESABRIDGE_REQUIRE_PG=1 (CI), where
an absent server fails them instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from pesabridge.devtools.backoffice import BackOffice
from pesabridge.store import Store

from .fixtures import servers

PG_URL = os.environ.get(
    "PESABRIDGE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REQUIRE_PG = os.environ.get("PESABRIDGE_REQUIRE_PG") == "1"


def _shared_dir() -> Path:
    configured = os.environ.get("PESABRIDGE_SHARED")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parents[1].parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """``../shared`` beside the checkout (CI lays a copy there)."""
    path = _shared_dir()
    if not (path / "samples").is_dir():
        pytest.fail(f"reference data not found at {path}; set PESABRIDGE_SHARED")
    return path


@pytest.fixture(scope="session")
def samples_dir(shared_dir: Path) -> Path:
    return shared_dir / "samples"


def _pg_available() -> str | None:
    """None when PostgreSQL answers, else the reason it does not."""
    try:
        engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as conn:
            conn.execute(text("select 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means "absent" here
        return str(exc).splitlines()[0]
    return None


@pytest.fixture(scope="session")
def pg_server() -> str:
    """The admin URL of the real PostgreSQL server (skips locally when absent)."""
    problem = _pg_available()
    if problem is not None:
        if REQUIRE_PG:
            pytest.fail(f"PESABRIDGE_REQUIRE_PG=1 but PostgreSQL is not answering: {problem}")
        pytest.skip(f"PostgreSQL not available: {problem}")
    return PG_URL


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty PostgreSQL database for one test, dropped afterwards."""
    name = f"pb_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(pg_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(pg_server).set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ledger.db'}"
    url: str = request.getfixturevalue("pg_url")
    return url


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    """A migrated, empty ledger on each backend."""
    opened = Store.open(db_url)
    try:
        yield opened
    finally:
        opened.close()


# -- file servers (FTP, FTPS, SFTP) for the file-source tests ----------------------------


@pytest.fixture
def ftp_server(tmp_path: Path) -> Iterator[servers.FileServer]:
    """A real FTP server (pyftpdlib) serving ``tmp_path / "ftp-root"``."""
    root = tmp_path / "ftp-root"
    root.mkdir()
    yield from servers.ftp_server(root, tmp_path)


@pytest.fixture
def ftps_server(tmp_path: Path) -> Iterator[servers.FileServer]:
    """A real FTPS server (explicit TLS, self-signed certificate)."""
    root = tmp_path / "ftps-root"
    root.mkdir()
    yield from servers.ftp_server(root, tmp_path, tls=True)


@pytest.fixture
def sftp_server(tmp_path: Path) -> Iterator[servers.FileServer]:
    """A real SFTP server (asyncssh) chrooted to ``tmp_path / "sftp-root"``."""
    root = tmp_path / "sftp-root"
    root.mkdir()
    yield from servers.sftp_server(root, tmp_path)


@pytest.fixture
async def backoffice() -> AsyncIterator[BackOffice]:
    """The sample back-office HTTP API, running on a free port for one test."""
    server = BackOffice()
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
