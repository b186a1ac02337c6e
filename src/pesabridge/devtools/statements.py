"""Writing M-Pesa business-portal statements: for the demo, the simulator and benchmarks.

The layout is the portal's (preamble, 13-column header, newest row first, a Pay Bill
Charge row above each payment sharing its receipt, running balances). Names and numbers
are fictional and deterministic for a given seed.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

HEADER = [
    "Receipt No.",
    "Completion Time",
    "Initiation Time",
    "Details",
    "Transaction Status",
    "Paid In",
    "Withdrawn",
    "Balance",
    "Balance Confirmed",
    "Reason Type",
    "Other Party Info",
    "Linked Transaction ID",
    "A/C No.",
]
_NAMES = [
    "ALICE WANJIKU",
    "BRIAN OTIENO",
    "CAROL AKINYI",
    "DAVID KIPTOO",
    "ESTHER MUTUA",
    "FAITH NJERI",
    "GEORGE ODHIAMBO",
    "HALIMA ABDI",
    "ISAAC MWANGI",
    "JOY CHEPTOO",
]
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789"


@dataclass(frozen=True, slots=True)
class StatementPayment:
    """One generated payment (its charge row is derived)."""

    receipt: str
    when: datetime  # naive East Africa Time, as the portal prints it
    amount: Decimal
    msisdn: str
    name: str
    reference: str


def receipt_for(index: int, prefix: str = "SG") -> str:
    """A unique, receipt-looking id (10 characters) for ``index``."""
    chars = []
    value = index
    for _ in range(8):
        value, digit = divmod(value, len(_ALPHABET))
        chars.append(_ALPHABET[digit])
    return prefix + "".join(reversed(chars))


def charge_for(amount: Decimal) -> Decimal:
    """A paybill charge: 0.5% of the amount, at least 1.00 and at most 200.00."""
    return min(
        max((amount * Decimal("0.005")).quantize(Decimal("0.01")), Decimal("1.00")),
        Decimal("200.00"),
    )


def payments(
    count: int, *, end: datetime, seed: int = 7, prefix: str = "SG"
) -> Iterator[StatementPayment]:
    """``count`` fictional payments, newest first (as the portal lists them), ending at ``end``.

    Deterministic for a given seed, so a statement can be written in two streaming passes.
    """
    rng = random.Random(seed)
    when = end
    for index in range(count):
        when -= timedelta(seconds=rng.randint(1, 40))
        yield StatementPayment(
            receipt=receipt_for(index * 7919 + seed, prefix),
            when=when,
            amount=Decimal(rng.randint(1_000, 5_000_000)).scaleb(-2),
            msisdn=f"2547{rng.randint(0, 99):02d}****{rng.randint(0, 999):03d}",
            name=rng.choice(_NAMES),
            reference=f"INV-{rng.randint(1, 99999):05d}",
        )


def write_statement(
    path: Path,
    count: int,
    *,
    end: datetime,
    seed: int = 7,
    short_code: str = "600977",
    holder: str = "Fictional Water Services Ltd",
    opening: Decimal = Decimal("0.00"),
    with_charges: bool = True,
) -> int:
    """Write a portal-style CSV statement of ``count`` payments; returns the rows written.

    Streams in constant memory: a first pass over the (deterministic) payments totals
    them for the preamble, the second writes the rows newest first with running balances.
    """
    paid_in = withdrawn = Decimal("0.00")
    newest: datetime | None = None
    oldest = end
    for p in payments(count, end=end, seed=seed):
        paid_in += p.amount
        if with_charges:
            withdrawn += charge_for(p.amount)
        newest = newest or p.when
        oldest = p.when
    closing = opening + paid_in - withdrawn
    rows = 0
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream, lineterminator="\n")
        day, until = oldest.strftime("%d-%m-%Y"), (newest or end).strftime("%d-%m-%Y")
        writer.writerow(["Account Holder:", holder])
        writer.writerow(["Short Code:", short_code])
        writer.writerow(["Account:", "Utility Account"])
        writer.writerow(["Time Period:", "From", f"{day} 00:00:00", "To", f"{until} 23:59:59"])
        writer.writerow(
            [
                "Operator:",
                "demo.operator",
                "Organization:",
                holder,
                "Date of Report:",
                f"{until} 23:59:59",
            ]
        )
        writer.writerow(
            [
                "Opening Balance:",
                f"{opening:,.2f}",
                "Closing Balance:",
                f"{closing:,.2f}",
                "Available Balance:",
                f"{closing:,.2f}",
                "Total Paid In:",
                f"{paid_in:,.2f}",
                "Total Withdrawn:",
                f"-{withdrawn:,.2f}",
            ]
        )
        writer.writerow(HEADER)
        balance = closing
        for p in payments(count, end=end, seed=seed):
            stamp = p.when.strftime("%d-%m-%Y %H:%M:%S")
            if with_charges:
                fee = charge_for(p.amount)
                writer.writerow(
                    [
                        p.receipt,
                        stamp,
                        stamp,
                        "Pay Bill Charge",
                        "Completed",
                        "",
                        f"-{fee:,.2f}",
                        f"{balance:,.2f}",
                        "true",
                        "Pay Utility",
                        "SP",
                        "",
                        "",
                    ]
                )
                balance += fee
                rows += 1
            writer.writerow(
                [
                    p.receipt,
                    stamp,
                    stamp,
                    f"Pay Bill from {p.msisdn} - {p.name} Acc. {p.reference}",
                    "Completed",
                    f"{p.amount:,.2f}",
                    "",
                    f"{balance:,.2f}",
                    "true",
                    "Pay Utility",
                    f"{p.msisdn} - {p.name}",
                    "",
                    p.reference,
                ]
            )
            balance -= p.amount
            rows += 1
    return rows
