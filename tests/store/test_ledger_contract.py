"""The ledger contract: what recording observations does, identically on SQLite and PostgreSQL.

Every test runs once per backend (the ``store`` fixture is parametrized).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select

from pesabridge.formats.base import Observation
from pesabridge.model import EAT, Counterparty, Direction, Entry, MsisdnKind, Status, Transaction
from pesabridge.store import Sighting, Store
from pesabridge.store import files as file_ledger
from pesabridge.store.queries import transaction_by_identity
from pesabridge.store.schema import deliveries, discrepancies, evidence, transactions

from ..helpers import txn

CALLBACK = Sighting(kind="callback", origin="callback")
HASH = "3f7a9c0e5b2d4f6a8c1e3b5d7f9a0c2e4b6d8f1a3c5e7b9d0f2a4c6e8b1d3f5a"


def to_erp(_txn: Transaction) -> Sequence[str]:
    return ["erp"]


def callback(t: Transaction, request_id: str = "req-1") -> Observation:
    return Observation(
        t, request_id, None, f'{{"TransID":"{t.receipt}","id":"{request_id}"}}'.encode()
    )


def line(t: Transaction, number: int, source: str = "statement.csv") -> Observation:
    return Observation(t, source, number, f"{t.receipt},{t.amount},{number}\n".encode())


def file_sighting(store: Store, sha256: str = "a" * 64, name: str = "statement.csv") -> Sighting:
    with store.write() as conn:
        file_id = file_ledger.start(
            conn,
            sha256=sha256,
            source="sftp",
            name=name,
            path=f"/in/{name}",
            size=10,
            mtime=None,
            fmt="mpesa-csv",
            now=datetime.now(UTC),
        )
    return Sighting(kind="file", origin="file", file_id=file_id)


def count(store: Store, table: Any, *where: Any) -> int:
    with store.read() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def recorded(store: Store, t: Transaction) -> tuple[int, Transaction]:
    with store.read() as conn:
        found = transaction_by_identity(conn, *t.identity)
    assert found is not None, f"{t.identity} was not recorded"
    return found


def evidence_rows(store: Store, txn_id: int) -> list[dict[str, Any]]:
    with store.read() as conn:
        rows = conn.execute(
            select(evidence).where(evidence.c.transaction_id == txn_id).order_by(evidence.c.id)
        ).mappings()
        return [dict(row) for row in rows]


def open_discrepancies(store: Store) -> list[dict[str, Any]]:
    with store.read() as conn:
        rows = conn.execute(
            select(discrepancies)
            .where(discrepancies.c.status == "open")
            .order_by(discrepancies.c.field)
        ).mappings()
        return [dict(row) for row in rows]


# -- new transactions ---------------------------------------------------------------------


def test_new_transactions_round_trip_exactly(store: Store) -> None:
    kes_plain = txn(
        "SLK4H7R2PQ",
        amount=Decimal("50000000.55"),  # beyond 32-bit minor units
        occurred_at=datetime(2024, 5, 6, 21, 5, 59, 123456, tzinfo=EAT),
        balance_after=Decimal("50010250.75"),
    )
    ugx_masked = txn(
        "MTN0000001",
        provider="mtn-momo",
        account=None,
        amount=Decimal("250000"),
        currency="UGX",
        occurred_at=datetime(2024, 5, 6, 9, 0, tzinfo=UTC),
        counterparty=Counterparty(msisdn="2567****5678", name="OKELLO"),
        reference=None,
        balance_after=Decimal("1000000"),
    )
    kes_hashed = txn(
        "SLK4H7R2PR",
        entry=Entry.REVERSAL,
        direction=Direction.DEBIT,
        amount=Decimal("0.05"),
        counterparty=Counterparty(msisdn=HASH),
        status=Status.REVERSED,
        related_receipt="SLK4H7R2PQ",
    )
    no_counterparty = txn(
        "SLK4H7R2PS",
        entry=Entry.CHARGE,
        direction=Direction.DEBIT,
        amount=Decimal("33.00"),
        counterparty=None,
        occurred_at=None,
    )
    batch = [kes_plain, ugx_masked, kes_hashed, no_counterparty]

    result = store.record([callback(t, f"req-{i}") for i, t in enumerate(batch)], CALLBACK, to_erp)

    assert (result.new, result.known, result.conflicting) == (4, 0, 0)
    for t in batch:
        _, got = recorded(store, t)
        assert got == t
    _, got = recorded(store, kes_plain)
    assert str(got.amount) == "50000000.55"
    assert str(got.balance_after) == "50010250.75"
    assert got.occurred_at == datetime(2024, 5, 6, 18, 5, 59, 123456, tzinfo=UTC)
    assert got.occurred_at is not None
    assert got.occurred_at.utcoffset() == timedelta(0)
    assert got.counterparty == Counterparty("254712345678", MsisdnKind.PLAIN, "JANE WANJIKU")
    _, got = recorded(store, ugx_masked)
    assert str(got.amount) == "250000"
    assert str(got.balance_after) == "1000000"
    assert got.account is None
    assert got.identity[1] == ""
    assert got.counterparty is not None
    assert got.counterparty.msisdn_kind is MsisdnKind.MASKED
    _, got = recorded(store, kes_hashed)
    assert str(got.amount) == "0.05"
    assert got.counterparty == Counterparty(HASH, MsisdnKind.HASHED, None)
    _, got = recorded(store, no_counterparty)
    assert got.counterparty is None
    assert got.occurred_at is None
    with store.read() as conn:
        accounts = conn.execute(
            select(transactions.c.account).where(transactions.c.receipt == "MTN0000001")
        ).scalar_one()
    assert accounts == ""


def test_ids_are_returned_per_observation_in_order(store: Store) -> None:
    # Deliberately not in identity order, with a repeat in the middle.
    c, a, b = txn("SLZ0000003"), txn("SLA0000001"), txn("SLM0000002")
    observations = [line(c, 1), line(a, 2), line(c, 3), line(b, 4)]

    result = store.record(observations, file_sighting(store), to_erp)

    ids = {t.receipt: recorded(store, t)[0] for t in (a, b, c)}
    assert result.transaction_ids == [
        ids["SLZ0000003"],
        ids["SLA0000001"],
        ids["SLZ0000003"],
        ids["SLM0000002"],
    ]
    assert sorted(result.new_ids) == sorted(ids.values())
    assert (result.new, result.known) == (3, 1)


def test_empty_batch_records_nothing(store: Store) -> None:
    result = store.record([], CALLBACK, to_erp)
    assert (result.new, result.known, result.transaction_ids) == (0, 0, [])
    assert store.status()["transactions"] == 0


# -- seen again -----------------------------------------------------------------------------


def test_callback_then_statement_line_is_one_transaction_with_two_evidence(store: Store) -> None:
    t = txn(balance_after=None)
    first = store.record([callback(t, "ws_CO_061120241805")], CALLBACK, to_erp)
    sighting = file_sighting(store)
    # The statement carries the balance the callback lacked: not a disagreement.
    second = store.record([line(txn(balance_after=Decimal("9000.00")), 12)], sighting, to_erp)

    assert (first.new, second.new, second.known, second.conflicting) == (1, 0, 1, 0)
    assert first.transaction_ids == second.transaction_ids
    assert store.status()["transactions"] == 1
    rows = evidence_rows(store, first.transaction_ids[0])
    assert [(r["kind"], r["source"], r["line"], r["file_id"]) for r in rows] == [
        ("callback", "ws_CO_061120241805", None, None),
        ("file", "statement.csv", 12, sighting.file_id),
    ]
    assert bytes(rows[0]["raw"]) == callback(t, "ws_CO_061120241805").raw
    assert bytes(rows[1]["raw"]) == line(t, 12).raw
    assert open_discrepancies(store) == []
    assert count(store, deliveries) == 1  # the second sighting adds no delivery


def test_the_same_sighting_twice_adds_no_evidence(store: Store) -> None:
    t = txn()
    store.record([callback(t, "req-9")], CALLBACK, to_erp)
    again = store.record([callback(t, "req-9")], CALLBACK, to_erp)  # a retried callback
    sighting = file_sighting(store)
    store.record([line(t, 5)], sighting, to_erp)
    reingest = store.record([line(t, 5)], sighting, to_erp)  # a file re-read after a crash

    assert (again.new, again.known, again.conflicting) == (0, 1, 0)
    assert (reingest.new, reingest.known, reingest.conflicting) == (0, 1, 0)
    txn_id = recorded(store, t)[0]
    assert [r["kind"] for r in evidence_rows(store, txn_id)] == ["callback", "file"]
    assert count(store, deliveries) == 1


def test_a_disagreeing_amount_opens_a_discrepancy_and_never_overwrites(store: Store) -> None:
    t = txn()
    store.record([callback(t)], CALLBACK, to_erp)
    sighting = file_sighting(store)
    result = store.record([line(txn(amount=Decimal("1550.00")), 7)], sighting, to_erp)

    assert (result.new, result.known, result.conflicting) == (0, 1, 1)
    txn_id, now_recorded = recorded(store, t)
    assert now_recorded == t
    assert str(now_recorded.amount) == "1500.00"
    (found,) = open_discrepancies(store)
    assert (found["field"], found["recorded"], found["observed"]) == (
        "amount",
        "1500.00",
        "1550.00",
    )
    assert found["transaction_id"] == txn_id
    assert found["evidence_id"] == evidence_rows(store, txn_id)[-1]["id"]
    assert found["resolved_at"] is None
    assert store.status()["open_discrepancies"] == 1

    # Seeing that same disagreeing line again does not raise the discrepancy twice.
    store.record([line(txn(amount=Decimal("1550.00")), 7)], sighting, to_erp)
    assert len(open_discrepancies(store)) == 1


def test_a_disagreeing_reference_opens_a_discrepancy(store: Store) -> None:
    t = txn(reference="INV-1001")
    store.record([callback(t, "req-1")], CALLBACK, to_erp)
    result = store.record([callback(txn(reference="INV-1010"), "req-2")], CALLBACK, to_erp)

    assert result.conflicting == 1
    (found,) = open_discrepancies(store)
    assert (found["field"], found["recorded"], found["observed"]) == (
        "reference",
        "INV-1001",
        "INV-1010",
    )
    assert recorded(store, t)[1].reference == "INV-1001"


def test_several_disagreeing_fields_each_get_a_discrepancy(store: Store) -> None:
    t = txn()
    store.record([callback(t, "req-1")], CALLBACK, to_erp)
    later = datetime(2024, 5, 6, 22, 5, 59, tzinfo=EAT)
    other = txn(amount=Decimal("15.00"), reference="X", occurred_at=later)
    store.record([callback(other, "req-2")], CALLBACK, to_erp)

    found = {d["field"]: (d["recorded"], d["observed"]) for d in open_discrepancies(store)}
    assert found == {
        "amount": ("1500.00", "15.00"),
        "reference": ("INV-1001", "X"),
        "occurred_at": ("2024-05-06T18:05:59+00:00", "2024-05-06T19:05:59+00:00"),
    }
    assert recorded(store, t)[1] == t


def test_duplicates_inside_one_batch(store: Store) -> None:
    t, u = txn("SLK0000001"), txn("SLK0000002")
    sighting = file_sighting(store)
    observations = [
        line(t, 1),
        line(u, 2),
        line(t, 3),  # the same row printed twice in a statement
        line(txn("SLK0000002", amount=Decimal("2.00")), 4),  # and one that disagrees
    ]
    result = store.record(observations, sighting, to_erp)

    assert (result.new, result.known, result.conflicting) == (2, 2, 1)
    t_id, u_id = recorded(store, t)[0], recorded(store, u)[0]
    assert result.transaction_ids == [t_id, u_id, t_id, u_id]
    assert [r["line"] for r in evidence_rows(store, t_id)] == [1, 3]
    assert [r["line"] for r in evidence_rows(store, u_id)] == [2, 4]
    assert recorded(store, u)[1] == u
    (found,) = open_discrepancies(store)
    assert (found["field"], found["observed"], found["transaction_id"]) == ("amount", "2.00", u_id)
    assert count(store, deliveries) == 2

    # An identical callback body twice in one batch is one sighting.
    v = txn("SLK0000003")
    again = store.record([callback(v, "r"), callback(v, "r")], CALLBACK, to_erp)
    assert (again.new, again.known, again.conflicting) == (1, 1, 0)
    assert len(evidence_rows(store, recorded(store, v)[0])) == 1


def test_same_receipt_different_entry_or_account_is_a_different_transaction(store: Store) -> None:
    payment = txn("SLK0000001")
    charge = txn(
        "SLK0000001", entry=Entry.CHARGE, direction=Direction.DEBIT, amount=Decimal("25.00")
    )
    other_till = txn("SLK0000001", account="600200")
    result = store.record(
        [line(payment, 1), line(charge, 2), line(other_till, 3)], file_sighting(store), to_erp
    )

    assert (result.new, result.conflicting) == (3, 0)
    assert len(set(result.transaction_ids)) == 3
    assert open_discrepancies(store) == []


# -- routes and outbox rows ----------------------------------------------------------------


def test_one_delivery_per_transaction_and_sink_as_routed(store: Store) -> None:
    def route(t: Transaction) -> Sequence[str]:
        return ["erp", "audit"] if t.direction is Direction.DEBIT else ["erp"]

    credit, debit = txn("SLK0000001"), txn("SLK0000002", direction=Direction.DEBIT)
    store.record([callback(credit, "a"), callback(debit, "b")], CALLBACK, route)
    store.record([callback(credit, "c"), callback(debit, "d")], CALLBACK, route)  # seen again

    with store.read() as conn:
        rows = conn.execute(
            select(
                transactions.c.receipt, deliveries.c.sink, deliveries.c.state, deliveries.c.attempts
            )
            .join(transactions, transactions.c.id == deliveries.c.transaction_id)
            .order_by(transactions.c.receipt, deliveries.c.sink)
        ).all()
    assert [tuple(r) for r in rows] == [
        ("SLK0000001", "erp", "pending", 0),
        ("SLK0000002", "audit", "pending", 0),
        ("SLK0000002", "erp", "pending", 0),
    ]
    assert store.status()["deliveries"] == {"erp": {"pending": 2}, "audit": {"pending": 1}}


def test_unrouted_transaction_is_recorded_without_deliveries(store: Store) -> None:
    store.record([callback(txn())], CALLBACK, lambda _t: [])
    assert store.status()["transactions"] == 1
    assert count(store, deliveries) == 0


# -- concurrency ------------------------------------------------------------------------------


def test_concurrent_recording_of_one_new_transaction_makes_one_row(store: Store) -> None:
    """Callbacks for the same payment arriving at once on several threads (or hosts)."""
    threads_n = 8
    t = txn("SLC0000001")
    batch_others = [txn(f"SLC00000{i:02d}") for i in range(2, 12)]
    barrier = threading.Barrier(threads_n)
    results: list[list[int]] = []
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            barrier.wait()
            # Each thread's batch shares the contested identities, in a different order.
            batch = [t, *batch_others] if n % 2 else [*reversed(batch_others), t]
            obs = [callback(x, f"req-{n}-{x.receipt}") for x in batch]
            result = store.record(obs, CALLBACK, to_erp)
            results.append(result.transaction_ids[:1] if n % 2 else result.transaction_ids[-1:])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(threads_n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert count(store, transactions) == 11
    txn_id = recorded(store, t)[0]
    assert results == [[txn_id]] * threads_n
    assert len(evidence_rows(store, txn_id)) == threads_n  # every request id kept
    assert count(store, deliveries) == 11  # one per (transaction, sink), never more
    assert open_discrepancies(store) == []
