"""The one module that knows which database it talks to.

Everything else in :mod:`pesabridge.store` writes portable SQLAlchemy Core; what differs
between SQLite and PostgreSQL lives here: how the engine is set up, how a write
transaction begins (SQLite takes the write lock up front with ``BEGIN IMMEDIATE``, so two
writers never deadlock on a lock upgrade), and how "insert unless present" is spelled.
Row claiming is portable: ``FOR UPDATE SKIP LOCKED`` on PostgreSQL, and SQLite, which
ignores it, serialises writers with the immediate lock instead.
"""

from __future__ import annotations

import fcntl
import hashlib
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
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
    # Connections are pooled: closing the last connection to a WAL database makes SQLite
    # checkpoint and delete the WAL, which would otherwise happen after every batch.
    # Pooled connections hold no snapshot between transactions (BEGIN is explicit).
    engine = create_engine(
        url, pool_size=8, max_overflow=16, connect_args={"timeout": 30, "check_same_thread": False}
    )

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


# -- bulk writes ------------------------------------------------------------------------
# Ingesting a statement writes three rows per line; going through the driver's
# executemany with plain tuples (rather than per-row SQL expression processing) is what
# keeps a million-row file fast. Values must already be in the driver's form: see
# ``bind_time``.


def bind_time(dialect_name: str) -> Callable[[datetime | None], Any]:
    """How an aware datetime is passed to the driver on this backend.

    SQLite has no time type: the same naive-UTC text SQLAlchemy's ``DateTime`` writes
    there, so rows written in bulk and rows written through the ORM layer compare alike.
    """
    if dialect_name != "sqlite":
        return _identity

    def sqlite_time(moment: datetime | None) -> str | None:
        if moment is None:
            return None
        if moment.tzinfo is not UTC:
            moment = moment.astimezone(UTC)
        return moment.isoformat(" ", "microseconds")[:26]  # drop "+00:00"

    return sqlite_time


def _identity(value: Any) -> Any:
    return value


def allocate_ids(conn: Connection, table: Table, count: int) -> list[int]:
    """``count`` fresh primary keys for ``table``, for rows inserted in bulk.

    SQLite: the next ids after the current maximum, safe because the caller holds the
    write lock (``BEGIN IMMEDIATE``). PostgreSQL: drawn from the column's sequence, so
    concurrent writers never collide.
    """
    if count == 0:
        return []
    name = table.name
    if conn.dialect.name == "sqlite":
        start = conn.exec_driver_sql(f"SELECT coalesce(max(id), 0) FROM {name}").scalar_one()
        return list(range(start + 1, start + 1 + count))
    rows = conn.exec_driver_sql(
        f"SELECT nextval(pg_get_serial_sequence('{name}', 'id')) "
        f"FROM generate_series(1, {int(count)})"
    )
    return [row[0] for row in rows]


def bulk_insert(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[tuple[Any, ...]]
) -> None:
    """Insert ``rows`` (tuples in ``columns`` order) with the driver's executemany."""
    if not rows:
        return
    marker = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    statement = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) "
        f"VALUES ({', '.join([marker] * len(columns))})"
    )
    conn.exec_driver_sql(statement, list(rows))


def read_time(dialect_name: str) -> Callable[[Any], datetime | None]:
    """How a time column read with the driver (see :class:`Prepared`) becomes an aware
    UTC datetime: SQLite returns the naive-UTC text :func:`bind_time` wrote."""
    if dialect_name != "sqlite":
        return _aware_utc

    def sqlite_time(value: Any) -> datetime | None:
        if value is None:
            return None
        # Parsed with the offset appended: the parser then returns the UTC singleton
        # itself, about seven times faster than a naive parse and ``replace(tzinfo=UTC)``
        # (the claim reads one time a row). Text that carries an offset already is not
        # what ``bind_time`` writes, and fails here rather than being read as UTC.
        return datetime.fromisoformat(value + "+00:00")

    return sqlite_time


def _aware_utc(value: Any) -> datetime | None:
    if value is None:
        return None
    assert isinstance(value, datetime)
    return value if value.tzinfo is UTC else value.astimezone(UTC)


class Prepared:
    """A Core statement compiled once for one dialect and run with the driver.

    For the worker's hot path (claims and outcomes, thousands a second): SQLAlchemy
    spends more time per execution (cache key, execution context, parameter and result
    processing) than SQLite spends running these statements. The SQL text is still
    SQLAlchemy's, so it is as portable as the statement; it runs on a cursor of the
    connection's own DBAPI connection, inside the caller's transaction. What the caller
    gives up is type processing, so values must be in the driver's form
    (:func:`bind_time`, :func:`read_time`), and errors arrive as the driver's exceptions.
    Statements must not use expanding (``IN``-list) parameters: give each list item its
    own parameter.
    """

    def __init__(self, statement: Any, dialect: Any) -> None:
        compiled = statement.compile(dialect=dialect)
        self.sql = str(compiled)
        self.positional: tuple[str, ...] | None = (
            tuple(compiled.positiontup) if compiled.positiontup is not None else None
        )
        # Values the statement itself carries (literals in ``.values(state=...)``).
        self.defaults: dict[str, Any] = dict(compiled.params)
        # The positional values picked out of a dict in one C call (bound per row); with
        # fewer than two names itemgetter would not return a tuple.
        names = self.positional or ()
        self._order = itemgetter(*names) if len(names) > 1 else None

    def bind(self, params: dict[str, Any]) -> Any:
        """The driver's parameters: a tuple in order, or a dict, per the paramstyle."""
        if self.positional is None:
            return {**self.defaults, **params}
        merged = {**self.defaults, **params}
        if self._order is not None:
            return self._order(merged)
        return tuple(merged[n] for n in self.positional)

    def rows(self, conn: Connection, params: dict[str, Any]) -> list[Any]:
        """Execute once; the rows it returns."""
        cursor = conn.connection.cursor()
        try:
            cursor.execute(self.sql, self.bind(params))
            return list(cursor.fetchall()) if cursor.description else []
        finally:
            cursor.close()

    def run(self, conn: Connection, params: dict[str, Any]) -> int:
        """Execute once; how many rows it changed."""
        cursor = conn.connection.cursor()
        try:
            cursor.execute(self.sql, self.bind(params))
            return int(cursor.rowcount)
        finally:
            cursor.close()

    def run_many(self, conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
        """Execute once per parameter set, with the driver's executemany."""
        if not rows:
            return
        cursor = conn.connection.cursor()
        try:
            cursor.executemany(self.sql, [self.bind(row) for row in rows])
        finally:
            cursor.close()


_prepared: dict[tuple[str, str], Prepared] = {}


def prepared(conn: Connection, key: str, build: Callable[[], Any]) -> Prepared:
    """The statement ``build()`` makes, compiled for ``conn``'s dialect once per ``key``."""
    dialect = conn.dialect
    found = _prepared.get((key, dialect.name))
    if found is None:
        found = _prepared[(key, dialect.name)] = Prepared(build(), dialect)
    return found


# -- exclusive work ---------------------------------------------------------------------


@contextmanager
def exclusive(engine: Engine, name: str) -> Iterator[bool]:
    """Try to become the only holder of ``name`` (one poller per source, across processes).

    Yields whether the lock was obtained; never waits. PostgreSQL: a session advisory lock
    on a connection held for the duration, so every host sharing the database agrees.
    SQLite: an exclusive ``flock`` on a file beside the database, so every process on
    the host (SQLite's own scope) agrees.
    """
    if engine.dialect.name == "postgresql":
        key = int.from_bytes(
            hashlib.blake2b(name.encode(), digest_size=8).digest(), "big", signed=True
        )
        with engine.connect() as conn:
            held = bool(conn.exec_driver_sql(f"SELECT pg_try_advisory_lock({key})").scalar())
            conn.commit()
            try:
                yield held
            finally:
                if held:
                    conn.exec_driver_sql(f"SELECT pg_advisory_unlock({key})")
                    conn.commit()
        return
    database = engine.url.database
    if not database or database == ":memory:":
        yield True
        return
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    with open(f"{database}.{safe}.lock", "a+b") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
