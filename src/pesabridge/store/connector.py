"""The one module that knows which database it talks to.

Everything else in :mod:`pesabridge.store` writes portable SQLAlchemy Core; what differs
between SQLite and PostgreSQL lives here: how the engine is set up, how a write
transaction begins (SQLite takes the write lock up front with ``BEGIN IMMEDIATE``, so two
writers never deadlock on a lock upgrade), and how "insert unless present" is spelled.
Row claiming is portable: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, and SQLite, which
ignores it, serialises writers with the immediate lock instead.
"""

from __future__ import annotations

import sqlite3
import time
from typing import Any

from sqlalchemy import Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.dml import Insert

from ..errors import StoreError

DEFAULT_URL = "sqlite:///pesabridge.db"


def create_store_engine(url: str, *, pool_size: int = 5) -> Engine:
    """An engine for ``url``, configured the way the ledger needs it."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return _sqlite_engine(url)
    if backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        return create_engine(parsed, pool_size=pool_size, pool_pre_ping=True)
    raise StoreError(f"unsupported database {backend!r} in {parsed!r}: use sqlite or postgresql")


def _sqlite_engine(url: str) -> Engine:
    # One connection per checkout: SQLite connections are cheap and this keeps
    # several processes (run, worker, CLI) from holding stale read snapshots.
    engine = create_engine(url, poolclass=NullPool, connect_args={"timeout": 30})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so BEGIN is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        _set_wal(cursor)
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = conn.get_execution_options().get("sqlite_begin", "IMMEDIATE")
        conn.exec_driver_sql(f"BEGIN {mode}")

    return engine


def _set_wal(cursor: Any) -> None:
    """Switch to WAL, waiting out another process doing the same on a fresh file.

    SQLite answers "database is locked" at once here, without calling the busy handler,
    when processes open a new database together (``run`` beside a CLI command).
    """
    deadline = time.monotonic() + 30
    while True:
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def read_only(engine: Engine) -> Engine:
    """The same database for readers: on SQLite, without taking the write lock."""
    if engine.dialect.name == "sqlite":
        return engine.execution_options(sqlite_begin="DEFERRED")
    return engine


def insert_ignore(engine_or_dialect_name: str, table: Table) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` for the given backend."""
    if engine_or_dialect_name == "sqlite":
        return sqlite.insert(table).on_conflict_do_nothing()
    if engine_or_dialect_name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing()
    raise StoreError(f"unsupported database {engine_or_dialect_name!r}")


def redacted(url: str) -> str:
    """The URL with any password hidden, for logs and status output."""
    return make_url(url).render_as_string(hide_password=True)
