"""Generated days for reconciliation: a portal statement, the callbacks that day, and
anomalies of every kind injected on purpose, each listed in :class:`Anomalies`.

For tests, the benchmark and demos. Names and numbers are fictional and deterministic for
a given seed. The statement is the portal's layout (see :mod:`.statements`): preamble
with the Time Period and balances, newest row first, a Pay Bill Charge row above each
payment, running balances. Callbacks are Daraja C2B confirmation bodies.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from .statements import HEADER, charge_for, receipt_for

_NAMES = ["ALICE WANJIKU", "BRIAN OTIENO", "CAROL AKINYI", "DAVID KIPTOO", "ESTHER MUTUA"]


@dataclass(frozen=True, slots=True)
class Row:
    """One statement row (times naive East Africa Time, as the portal prints them)."""

    receipt: str
    when: datetime
    details: str
    paid_in: Decimal | None
    withdrawn: Decimal | None
    balance: Decimal
    other: str
    linked: str
    reference: str
    reason: str = "Pay Utility"


@dataclass(frozen=True, slots=True)
class Payment:
    receipt: str
    when: datetime
    amount: Decimal
    msisdn: str
    name: str
    reference: str


@dataclass(slots=True)
class Anomalies:
    """What was injected (receipts), so a test can check each one is found."""

    lost_callbacks: list[str] = field(default_factory=list)
    duplicate_callbacks: list[str] = field(default_factory=list)
    forged_callbacks: list[str] = field(default_factory=list)
    amount_mismatches: list[str] = field(default_factory=list)
    missing_statement_rows: list[str] = field(default_factory=list)
    broken_balances: list[str] = field(default_factory=list)
    """Receipts of the rows whose running balance was misprinted."""
    reversals: list[str] = field(default_factory=list)
    """Receipts of payments reversed on the statement (the reversal row's own receipt is
    in ``reversal_receipts``)."""
    reversal_receipts: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Day:
    """A generated day."""

    day: date
    short_code: str
    payments: list[Payment]
    rows: list[Row]
    """Statement rows, oldest first."""
    callbacks: list[bytes]
    """Daraja C2B confirmation bodies, in arrival order (duplicates included)."""
    anomalies: Anomalies
    opening: Decimal
    closing: Decimal

    def write_statement(self, path: Path, holder: str = "Fictional Water Services Ltd") -> Path:
        """The day's statement as a portal CSV at ``path``."""
        write_rows(path, self.rows, self.day, self.day, self.short_code, self.opening, holder)
        return path


def callback_body(p: Payment, short_code: str, amount: Decimal | None = None) -> dict[str, str]:
    """A Daraja C2B confirmation for ``p`` (amount overridable to inject a mismatch)."""
    first, _, last = p.name.partition(" ")
    return {
        "TransactionType": "Pay Bill",
        "TransID": p.receipt,
        "TransTime": p.when.strftime("%Y%m%d%H%M%S"),
        "TransAmount": f"{amount if amount is not None else p.amount:.2f}",
        "BusinessShortCode": short_code,
        "BillRefNumber": p.reference,
        "InvoiceNumber": "",
        "OrgAccountBalance": "",
        "ThirdPartyTransID": "",
        "MSISDN": p.msisdn,
        "FirstName": first,
        "MiddleName": "",
        "LastName": last,
    }


def _payments(day: date, count: int, rng: random.Random, prefix: str, seed: int) -> list[Payment]:
    start = datetime.combine(day, time(6, 0))
    span = 16 * 3600
    moments = sorted(rng.sample(range(span), count))
    return [
        Payment(
            receipt=receipt_for(index * 7919 + seed, prefix),
            when=start + timedelta(seconds=offset),
            amount=Decimal(rng.randint(1_000, 2_000_000)).scaleb(-2),
            msisdn=f"2547{rng.randint(10_000_000, 99_999_999)}",
            name=rng.choice(_NAMES),
            reference=f"INV-{rng.randint(1, 99999):05d}",
        )
        for index, offset in enumerate(moments)
    ]


def generate_day(
    day: date,
    count: int = 40,
    *,
    seed: int = 11,
    short_code: str = "600977",
    opening: Decimal = Decimal("10000.00"),
    anomalies: bool = True,
    prefix: str = "SK",
) -> Day:
    """``count`` payments on ``day`` with their charges; with ``anomalies``: two lost
    callbacks, a callback delivered twice, a forged callback, an amount mismatch, a row
    missing from the statement (its callback came), a misprinted running balance and a
    reversed payment. Without, a clean day."""
    rng = random.Random(seed)
    pays = _payments(day, count, rng, prefix, seed)
    found = Anomalies()
    omitted: set[str] = set()
    reversed_of: Payment | None = None
    if anomalies:
        if count < 10:
            raise ValueError("a day with anomalies needs at least 10 payments")
        found.lost_callbacks = [pays[1].receipt, pays[5].receipt]
        found.duplicate_callbacks = [pays[2].receipt]
        found.amount_mismatches = [pays[3].receipt]
        found.missing_statement_rows = [pays[4].receipt]
        found.broken_balances = [pays[7].receipt]
        reversed_of = pays[8]
        found.reversals = [reversed_of.receipt]
        omitted.add(pays[4].receipt)
    # the statement's events in time order (a reversal three minutes after its payment)
    events: list[tuple[datetime, int, Payment]] = [(p.when, 0, p) for p in pays]
    if reversed_of is not None:
        events.append((reversed_of.when + timedelta(minutes=3), 1, reversed_of))
    events.sort(key=lambda e: (e[0], e[1]))
    rows: list[Row] = []
    balance = opening
    for when, kind, p in events:
        if kind == 1:
            receipt = receipt_for(999_000 + seed, prefix)
            balance -= p.amount
            rows.append(
                Row(receipt, when, f"Reversal of {p.receipt}", None, p.amount, balance, "SP",
                    p.receipt, "", "Reversal")
            )  # fmt: skip
            found.reversal_receipts = [receipt]
            continue
        fee = charge_for(p.amount)
        balance += p.amount
        masked = f"{p.msisdn[:6]}****{p.msisdn[-3:]}"
        if p.receipt not in omitted:
            rows.append(
                Row(p.receipt, when, f"Pay Bill from {masked} - {p.name} Acc. {p.reference}",
                    p.amount, None, balance, f"{masked} - {p.name}", "", p.reference)
            )  # fmt: skip
        balance -= fee
        if p.receipt not in omitted:
            rows.append(Row(p.receipt, when, "Pay Bill Charge", None, fee, balance, "SP", "", ""))
    if found.broken_balances:
        index = next(
            i for i, r in enumerate(rows) if r.receipt == found.broken_balances[0] and r.paid_in
        )
        bad = rows[index]
        misprinted = bad.balance + Decimal("100.00")
        rows[index] = Row(bad.receipt, bad.when, bad.details, bad.paid_in, bad.withdrawn,
                          misprinted, bad.other, bad.linked, bad.reference)  # fmt: skip
    # the callbacks, in arrival order
    callbacks: list[bytes] = []
    for p in pays:
        if p.receipt in found.lost_callbacks:
            continue
        amount = p.amount + Decimal("10.00") if p.receipt in found.amount_mismatches else None
        body = callback_body(p, short_code, amount)
        callbacks.append(json.dumps(body).encode())
        if p.receipt in found.duplicate_callbacks:
            # the same confirmation sent again, serialised differently (a retry)
            callbacks.append(json.dumps(body, indent=1).encode())
    if anomalies:
        when = pays[6].when + timedelta(seconds=7)
        forged = Payment(receipt_for(888_000 + seed, prefix), when, Decimal("4999.00"),
                         "254700000001", "EVE MALLORY", "INV-66666")  # fmt: skip
        found.forged_callbacks = [forged.receipt]
        callbacks.append(json.dumps(callback_body(forged, short_code)).encode())
    return Day(day, short_code, pays, rows, callbacks, found, opening, balance)


def write_rows(
    path: Path,
    rows: Sequence[Row],
    first: date,
    last: date,
    short_code: str,
    opening: Decimal,
    holder: str = "Fictional Water Services Ltd",
) -> None:
    """A portal statement of ``rows`` (oldest first; written newest first)."""
    paid = sum((r.paid_in or Decimal(0) for r in rows), Decimal(0))
    withdrawn = sum((r.withdrawn or Decimal(0) for r in rows), Decimal(0))
    closing = opening + paid - withdrawn
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        writer.writerow(["Account Holder:", holder])
        writer.writerow(["Short Code:", short_code])
        writer.writerow(["Account:", "Utility Account"])
        writer.writerow(["Time Period:", "From", f"{first:%d-%m-%Y} 00:00:00", "To",
                         f"{last:%d-%m-%Y} 23:59:59"])  # fmt: skip
        writer.writerow(["Opening Balance:", f"{opening:,.2f}", "Closing Balance:",
                         f"{closing:,.2f}", "Total Paid In:", f"{paid:,.2f}",
                         "Total Withdrawn:", f"-{withdrawn:,.2f}"])  # fmt: skip
        writer.writerow(HEADER)
        for r in reversed(rows):
            stamp = r.when.strftime("%d-%m-%Y %H:%M:%S")
            writer.writerow(
                [r.receipt, stamp, stamp, r.details, "Completed",
                 f"{r.paid_in:,.2f}" if r.paid_in is not None else "",
                 f"-{r.withdrawn:,.2f}" if r.withdrawn is not None else "",
                 f"{r.balance:,.2f}", "true", r.reason, r.other, r.linked, r.reference]
            )  # fmt: skip


BACKOFFICE_COLUMNS = {
    "document": "Doc No",
    "receipt": "M-Pesa Ref",
    "amount": "Amount",
    "time": "Posted",
    "reference": "Narration",
}
"""The column mapping of :func:`write_backoffice_export`'s files."""


def write_backoffice_export(
    path: Path,
    postings: Iterable[Mapping[str, Any]],
    *,
    drop: Iterable[str] = (),
    extra: Iterable[Mapping[str, str]] = (),
) -> Path:
    """A back office's CSV export of what it posted: one line per posting (the body the
    HTTP sink sent, as the sample back office keeps it under ``postings[key]["body"]``),
    leaving out the receipts in ``drop`` and adding ``extra`` lines (by column name)."""
    dropped = set(drop)
    columns = list(BACKOFFICE_COLUMNS.values())
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.DictWriter(stream, columns, lineterminator="\n")
        writer.writeheader()
        for number, posting in enumerate(postings, start=1):
            body = posting["body"]
            if body["receipt"] in dropped:
                continue
            writer.writerow(
                {
                    "Doc No": posting.get("document", f"DOC-{number:06d}"),
                    "M-Pesa Ref": body["receipt"],
                    "Amount": body["amount"],
                    "Posted": body["occurred_at"],
                    "Narration": body.get("reference") or "",
                }
            )
        for line in extra:
            writer.writerow({c: line.get(c, "") for c in columns})
    return path
