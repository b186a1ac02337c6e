"""Recording observations: new transactions, more evidence, discrepancies, outbox rows.

Works on a batch inside the caller's transaction, so a file's rows and their outbox rows
commit together: nothing is acknowledged that is not durable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select

from ..formats.base import Observation
from ..model import Identity, Transaction
from .connector import insert_ignore
from .rows import fingerprint, idempotency_key, row_transaction, transaction_row
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
    file_sha256: str | None = None


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
    existing = _existing(conn, {obs.transaction.identity for obs in observations})
    fresh: dict[Identity, Observation] = {}
    repeats: list[Observation] = []
    for obs in observations:
        identity = obs.transaction.identity
        if identity in existing or identity in fresh:
            repeats.append(obs)
        else:
            fresh[identity] = obs

    ids: dict[Identity, int] = {key: value[0] for key, value in existing.items()}
    if fresh:
        ordered = sorted(fresh.values(), key=lambda o: o.transaction.identity)
        new_ids = _insert_new(conn, ordered, sighting, route, now)
        for obs, txn_id in zip(ordered, new_ids, strict=True):
            ids[obs.transaction.identity] = txn_id
            existing[obs.transaction.identity] = (txn_id, obs.transaction)
        result.new = len(ordered)
        result.new_ids = new_ids
    for obs in repeats:
        txn_id, recorded = existing[obs.transaction.identity]
        conflict = _record_repeat(conn, txn_id, recorded, obs, sighting, now)
        result.known += 1
        result.conflicting += conflict
    result.transaction_ids = [ids[obs.transaction.identity] for obs in observations]
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
    if sighting.file_sha256 is not None:
        return fingerprint("file", sighting.file_sha256, str(obs.line))
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


def _insert_new(
    conn: Connection,
    ordered: Sequence[Observation],
    sighting: Sighting,
    route: Router,
    now: datetime,
) -> list[int]:
    rows = [transaction_row(obs.transaction, origin=sighting.origin, now=now) for obs in ordered]
    inserted = conn.execute(
        insert(transactions).returning(transactions.c.id, sort_by_parameter_order=True), rows
    )
    new_ids = [row[0] for row in inserted]
    conn.execute(
        insert(evidence),
        [
            _evidence_row(obs, txn_id, sighting, now)
            for obs, txn_id in zip(ordered, new_ids, strict=True)
        ],
    )
    outbox = [
        {
            "transaction_id": txn_id,
            "sink": sink,
            "idempotency_key": idempotency_key(obs.transaction.identity, sink),
            "state": "pending",
            "attempts": 0,
            "next_attempt_at": now,
            "created_at": now,
            "updated_at": now,
        }
        for obs, txn_id in zip(ordered, new_ids, strict=True)
        for sink in route(obs.transaction)
    ]
    if outbox:
        conn.execute(insert(deliveries), outbox)
    return new_ids


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
