"""Recording observations: new transactions, more evidence, discrepancies, outbox rows.

Works on a batch inside the caller's transaction, so a file's rows and their outbox rows
commit together: nothing is acknowledged that is not durable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, insert, select

from ..formats.base import Observation
from ..model import Identity, Transaction
from ..model.currency import minor_units
from .connector import allocate_ids, bind_time, bulk_insert, insert_ignore
from .rows import TRANSACTION_FIELDS, fingerprint, row_transaction
from .schema import deliveries, discrepancies, evidence, transactions

Router = Callable[[Transaction], Sequence[str]]
"""Given a transaction, the names of the sinks it must be delivered to."""

# Receipts per lookup query: well inside SQLite's and PostgreSQL's bind-parameter limits.
_LOOKUP_CHUNK = 5000


@dataclass(slots=True)
class RecordResult:
    """What recording a batch did."""

    new: int = 0
    known: int = 0
    conflicting: int = 0
    transaction_ids: list[int] = field(default_factory=list)
    """One per observation, in order."""
    new_ids: list[int] = field(default_factory=list)

    def add(self, other: RecordResult) -> None:
        self.new += other.new
        self.known += other.known
        self.conflicting += other.conflicting
        self.transaction_ids.extend(other.transaction_ids)
        self.new_ids.extend(other.new_ids)


@dataclass(frozen=True, slots=True)
class Sighting:
    """How a batch was seen: by file (with the file's ledger id) or by callback."""

    kind: str  # file | callback
    origin: str  # file | callback | backfill | manual
    file_id: int | None = None


def record_batch(
    conn: Connection,
    observations: Sequence[Observation],
    sighting: Sighting,
    route: Router,
    now: datetime,
) -> RecordResult:
    """Record observations; returns counts and each observation's transaction id."""
    result = RecordResult()
    if not observations:
        return result
    identities = [obs.transaction.identity for obs in observations]
    existing = _existing(conn, set(identities))
    fresh: dict[Identity, Observation] = {}
    repeats: list[tuple[Identity, Observation]] = []
    for identity, obs in zip(identities, observations, strict=True):
        if identity in existing or identity in fresh:
            repeats.append((identity, obs))
        else:
            fresh[identity] = obs

    ids: dict[Identity, int] = {key: value[0] for key, value in existing.items()}
    if fresh:
        # sorted by key: b-tree inserts land next to each other
        ordered = sorted(fresh.items(), key=itemgetter(0))
        new_ids = _insert_new(conn, ordered, sighting, route, now)
        for (identity, obs), txn_id in zip(ordered, new_ids, strict=True):
            ids[identity] = txn_id
            existing[identity] = (txn_id, obs.transaction)
        result.new = len(ordered)
        result.new_ids = new_ids
    for identity, obs in repeats:
        txn_id, recorded = existing[identity]
        conflict = _record_repeat(conn, txn_id, recorded, obs, sighting, now)
        result.known += 1
        result.conflicting += conflict
    result.transaction_ids = [ids[identity] for identity in identities]
    return result


def _existing(
    conn: Connection, identities: set[Identity]
) -> dict[Identity, tuple[int, Transaction]]:
    found: dict[Identity, tuple[int, Transaction]] = {}
    receipts = sorted({identity[2] for identity in identities})
    for start in range(0, len(receipts), _LOOKUP_CHUNK):
        chunk = receipts[start : start + _LOOKUP_CHUNK]
        rows = conn.execute(select(transactions).where(transactions.c.receipt.in_(chunk)))
        for row in rows.mappings():
            identity = (row["provider"], row["account"], row["receipt"], row["entry"])
            if identity in identities:
                found[identity] = (row["id"], row_transaction(row))
    return found


def _evidence_fingerprint(obs: Observation, sighting: Sighting) -> str:
    if sighting.file_id is not None:
        # where, not what: the file (one ledger row per content) and the line
        return f"file:{sighting.file_id}:{obs.line}"
    return fingerprint(sighting.kind, obs.raw)


def _evidence_row(
    obs: Observation, txn_id: int, sighting: Sighting, now: datetime
) -> dict[str, Any]:
    return {
        "transaction_id": txn_id,
        "kind": sighting.kind,
        "source": obs.source,
        "file_id": sighting.file_id,
        "line": obs.line,
        "fingerprint": _evidence_fingerprint(obs, sighting),
        "raw": obs.raw,
        "observed_at": now,
    }


_TRANSACTION_COLUMNS = ("id", *TRANSACTION_FIELDS, "origin", "created_at")
_EVIDENCE_COLUMNS = (
    "transaction_id",
    "kind",
    "source",
    "file_id",
    "line",
    "fingerprint",
    "raw",
    "observed_at",
)
_DELIVERY_COLUMNS = (
    "transaction_id",
    "sink",
    "state",
    "attempts",
    "next_attempt_at",
    "created_at",
    "updated_at",
)


def _insert_new(
    conn: Connection,
    ordered: Sequence[tuple[Identity, Observation]],
    sighting: Sighting,
    route: Router,
    now: datetime,
) -> list[int]:
    """Insert new transactions with their first evidence and their outbox rows.

    This is the path a million-row statement takes, so rows are built as tuples and
    written with the driver's executemany (see :func:`connector.bulk_insert`).
    """
    ids = allocate_ids(conn, transactions, len(ordered))
    as_time = bind_time(conn.dialect.name)
    stamp = as_time(now)
    origin, kind, file_id = sighting.origin, sighting.kind, sighting.file_id
    txn_rows = []
    evidence_rows = []
    delivery_rows = []
    # Per-row work kept to the minimum (a million-row file runs this loop a million
    # times): a time shared by neighbouring rows (a payment and its charge) is converted
    # once, minor units are looked up once per currency, enum values are read from the
    # member's slot rather than through the ``value`` descriptor.
    last_time: Any = None
    last_bound: Any = None
    scales: dict[str, int] = {}
    for txn_id, (identity, obs) in zip(ids, ordered, strict=True):
        txn = obs.transaction
        cp = txn.counterparty
        currency = txn.currency
        scale = scales.get(currency)
        if scale is None:
            scale = scales[currency] = minor_units(currency)
        balance = txn.balance_after
        occurred = txn.occurred_at
        if occurred is not last_time:
            last_time, last_bound = occurred, as_time(occurred)
        txn_rows.append(
            (
                txn_id,
                identity[0],
                identity[1],
                identity[2],
                identity[3],
                txn.direction._value_,
                int(txn.amount.scaleb(scale)),
                currency,
                last_bound,
                cp.msisdn if cp else None,
                cp.msisdn_kind._value_ if cp and cp.msisdn_kind else None,
                cp.name if cp else None,
                txn.reference,
                None if balance is None else int(balance.scaleb(scale)),
                txn.status._value_,
                txn.related_receipt,
                origin,
                stamp,
            )
        )
        evidence_rows.append(
            (
                txn_id,
                kind,
                obs.source,
                file_id,
                obs.line,
                _evidence_fingerprint(obs, sighting),
                obs.raw,
                stamp,
            )
        )
        for sink in route(txn):
            delivery_rows.append((txn_id, sink, "pending", 0, stamp, stamp, stamp))
    bulk_insert(conn, transactions, _TRANSACTION_COLUMNS, txn_rows)
    bulk_insert(conn, evidence, _EVIDENCE_COLUMNS, evidence_rows)
    bulk_insert(conn, deliveries, _DELIVERY_COLUMNS, delivery_rows)
    return ids


def _record_repeat(
    conn: Connection,
    txn_id: int,
    recorded: Transaction,
    obs: Observation,
    sighting: Sighting,
    now: datetime,
) -> int:
    """Add the sighting as evidence; a disagreement becomes a discrepancy, never an overwrite."""
    statement = insert_ignore(conn.dialect.name, evidence).returning(evidence.c.id)
    evidence_id = conn.execute(statement, _evidence_row(obs, txn_id, sighting, now)).scalar()
    if evidence_id is None:
        return 0  # this very sighting was recorded before (a re-ingest after a crash)
    diffs = recorded.differences(obs.transaction)
    if not diffs:
        return 0
    conn.execute(
        insert(discrepancies),
        [
            {
                "transaction_id": txn_id,
                "evidence_id": evidence_id,
                "field": name,
                "recorded": _text(mine),
                "observed": _text(theirs),
                "status": "open",
                "created_at": now,
            }
            for name, (mine, theirs) in diffs.items()
        ],
    )
    return 1


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
