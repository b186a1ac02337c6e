"""SQL back office: upsert each transaction into the back office's own table.

Any database SQLAlchemy reaches (PostgreSQL, MariaDB/MySQL through the pure-Python
PyMySQL driver, SQLite). The config maps target columns to transaction fields; the row is
written as an upsert on a key column (the idempotency key, or the receipt), so a retry or
a replay leaves exactly one row. A type error or a constraint violation will never succeed
and is dead-lettered with the database's own message; a lost connection is retried.

SQLAlchemy is synchronous: statements run in worker threads, at most ``concurrency`` at
a time, over a pool of that size.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, model_validator
from sqlalchemy import Engine, MetaData, Table, create_engine, exc
from sqlalchemy.dialects import mysql, postgresql, sqlite

from ..config import ComponentConfig
from ..errors import DeliveryError
from ..model import Transaction
from ..store import Claimed
from ..store.rows import to_minor
from .base import Delivered

FIELDS = (
    "idempotency_key",
    "sink",
    "provider",
    "account",
    "receipt",
    "entry",
    "direction",
    "amount",
    "amount_minor",
    "signed_amount",
    "currency",
    "occurred_at",
    "msisdn",
    "msisdn_kind",
    "name",
    "reference",
    "balance_after",
    "status",
    "related_receipt",
)
"""What a column can be mapped to."""


class SqlSinkConfig(ComponentConfig):
    """``type: sql``."""

    type: Literal["sql"] = "sql"
    url: SecretStr
    """A SQLAlchemy URL (``postgresql+psycopg://...``, ``mysql+pymysql://...``,
    ``sqlite:///...``); usually with a ``${PASSWORD}`` reference, so held as a secret."""
    table: str
    db_schema: str | None = Field(default=None, alias="schema")
    key: str
    """The column the upsert is keyed on; it must be unique in the table (primary key or
    unique index), and mapped in ``columns``."""
    columns: dict[str, str] = Field(min_length=1)
    """Target column -> transaction field (see :data:`FIELDS`)."""
    on_conflict: Literal["update", "ignore"] = "update"
    """A row with the key already there: rewrite the mapped columns, or leave it."""
    concurrency: int = Field(default=4, ge=1, le=64)
    max_attempts: int = Field(default=12, ge=1)
    backoff_base: float = Field(default=2.0, gt=0)
    backoff_cap: float = Field(default=3600.0, gt=0)

    @model_validator(mode="after")
    def _mapping(self) -> SqlSinkConfig:
        unknown = sorted(set(self.columns.values()) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown fields {unknown}; known: {', '.join(FIELDS)}")
        if self.key not in self.columns:
            raise ValueError(f"the key column {self.key!r} must be mapped in columns")
        return self


def field_values(txn: Transaction, idempotency_key: str, sink: str) -> dict[str, Any]:
    """Every mappable field of a transaction, as database-ready Python values."""
    party = txn.counterparty
    signed: Decimal = txn.amount if txn.direction.value == "credit" else -txn.amount
    return {
        "idempotency_key": idempotency_key,
        "sink": sink,
        "provider": txn.provider,
        "account": txn.account,
        "receipt": txn.receipt,
        "entry": txn.entry.value,
        "direction": txn.direction.value,
        "amount": txn.amount,
        "amount_minor": to_minor(txn.amount, txn.currency),
        "signed_amount": signed,
        "currency": txn.currency,
        "occurred_at": txn.occurred_at,
        "msisdn": party.msisdn if party else None,
        "msisdn_kind": party.msisdn_kind if party else None,
        "name": party.name if party else None,
        "reference": txn.reference,
        "balance_after": txn.balance_after,
        "status": txn.status.value,
        "related_receipt": txn.related_receipt,
    }


# PostgreSQL SQLSTATE classes worth trying again: connection, transaction rollback
# (deadlock, serialization), insufficient resources, operator intervention, system error.
PG_RETRY_CLASSES = frozenset({"08", "40", "53", "57", "58"})
# MySQL/MariaDB server errors worth trying again: lock wait timeout, deadlock, too many
# connections, shutdown in progress, query interrupted. Client errors (2000-2999: cannot
# connect, server gone away, lost connection) are retried too.
MYSQL_RETRY_CODES = frozenset({1040, 1053, 1205, 1213, 1317, 1927})


def retryable(error: exc.DBAPIError) -> bool:
    """Whether a database error can go away by itself (else the row will never fit)."""
    if error.connection_invalidated:
        return True
    if isinstance(error, exc.IntegrityError | exc.DataError | exc.ProgrammingError):
        return False
    orig = error.orig
    sqlstate = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if isinstance(sqlstate, str) and len(sqlstate) == 5:
        return sqlstate[:2] in PG_RETRY_CLASSES
    args = getattr(orig, "args", ())
    if args and isinstance(args[0], int):
        code = args[0]
        return code in MYSQL_RETRY_CODES or 2000 <= code < 3000
    text = str(orig).lower()
    if "locked" in text or "busy" in text or "unable to open" in text:
        return True  # SQLite
    return not isinstance(error, exc.OperationalError | exc.InternalError | exc.NotSupportedError)


def _message(error: BaseException) -> str:
    orig = getattr(error, "orig", None)
    return str(orig if orig is not None else error).strip().splitlines()[0][:1000]


class SqlSink:
    """Upserts each transaction into a table of the back office's database."""

    Config: ClassVar[type[ComponentConfig]] = SqlSinkConfig

    def __init__(self, config: SqlSinkConfig) -> None:
        self.config = config
        self.name = config.name
        self._engine: Engine | None = None
        self._table: Table | None = None
        self._limit = asyncio.Semaphore(config.concurrency)
        self._setup = asyncio.Lock()

    def _open(self) -> Table:
        if self._table is None:
            url = self.config.url.get_secret_value()
            options: dict[str, Any] = {"pool_pre_ping": True}
            if not url.startswith("sqlite"):
                options.update(pool_size=self.config.concurrency, max_overflow=0)
            self._engine = create_engine(url, **options)
            self._table = Table(
                self.config.table,
                MetaData(),
                schema=self.config.db_schema,
                autoload_with=self._engine,
            )
            missing = sorted(set(self.config.columns) - set(self._table.c.keys()))
            if missing:
                raise exc.ArgumentError(f"table {self.config.table} has no columns {missing}")
        return self._table

    def _upsert(self, values: dict[str, Any]) -> None:
        table = self._open()
        assert self._engine is not None
        dialect = self._engine.dialect.name
        updates = {c: values[c] for c in values if c != self.config.key}
        ignore = self.config.on_conflict == "ignore" or not updates
        statement: Any
        if dialect == "postgresql":
            statement = postgresql.insert(table).values(values)
            statement = (
                statement.on_conflict_do_nothing(index_elements=[self.config.key])
                if ignore
                else statement.on_conflict_do_update(index_elements=[self.config.key], set_=updates)
            )
        elif dialect in ("mysql", "mariadb"):
            statement = mysql.insert(table).values(values)
            statement = statement.on_duplicate_key_update(
                {self.config.key: statement.inserted[self.config.key]} if ignore else updates
            )
        elif dialect == "sqlite":
            statement = sqlite.insert(table).values(values)
            statement = (
                statement.on_conflict_do_nothing(index_elements=[self.config.key])
                if ignore
                else statement.on_conflict_do_update(index_elements=[self.config.key], set_=updates)
            )
        else:
            raise exc.ArgumentError(f"no upsert for the {dialect} dialect")
        with self._engine.begin() as conn:
            conn.execute(statement)

    async def deliver(self, claimed: Claimed) -> Delivered:
        """Upsert one transaction; raise :class:`DeliveryError` on failure."""
        fields = field_values(claimed.transaction, claimed.idempotency_key, self.name)
        values = {column: fields[name] for column, name in self.config.columns.items()}
        summary = (
            f"UPSERT {self.config.table} {self.config.key}={values[self.config.key]} "
            f"({len(values)} columns)"
        )
        async with self._limit:
            if self._table is None:
                async with self._setup:
                    try:
                        await asyncio.to_thread(self._open)
                    except (exc.OperationalError, exc.InterfaceError) as error:
                        self._table = None
                        raise DeliveryError(
                            f"cannot reach the database: {_message(error)}",
                            retryable=True,
                            request_summary=summary,
                        ) from None
                    except (exc.NoSuchTableError, exc.ArgumentError) as error:
                        self._table = None
                        raise DeliveryError(
                            f"table {self.config.table}: {_message(error)}",
                            retryable=False,
                            request_summary=summary,
                        ) from None
            try:
                await asyncio.to_thread(self._upsert, values)
            except exc.DBAPIError as error:
                if not retryable(error):
                    raise DeliveryError(
                        f"the database refused it: {_message(error)}",
                        retryable=False,
                        request_summary=summary,
                    ) from None
                # Connection lost, deadlock, server restarting: the transaction either
                # committed or not; the upsert makes trying again harmless.
                raise DeliveryError(
                    f"database error: {_message(error)}",
                    retryable=True,
                    unknown_outcome=error.connection_invalidated,
                    request_summary=summary,
                ) from None
            except exc.StatementError as error:  # a value the column type refuses
                raise DeliveryError(
                    f"the database refused it: {_message(error)}",
                    retryable=False,
                    request_summary=summary,
                ) from None
        return Delivered(request_summary=summary, document_id=str(values[self.config.key]))

    async def close(self) -> None:
        if self._engine is not None:
            await asyncio.to_thread(self._engine.dispose)
