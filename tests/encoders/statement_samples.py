"""Statements for the camt, MT940 and OFX tests: the M-Pesa sample and random ones."""

from __future__ import annotations

import os
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

from hypothesis import strategies as st

from pesabridge.encoders.base import Statement
from pesabridge.encoders.statements import build_statements
from pesabridge.formats import get_parser
from pesabridge.formats.base import Observation, StatementHeader
from pesabridge.model import EAT, Counterparty, Direction, Entry, Transaction

GOLDEN = Path(__file__).parent / "golden"
CREATED = datetime(2024, 5, 7, 4, 0, tzinfo=UTC)
SAMPLE = "ORG_600977_Utility Account_Completed_20240507070000.csv"


def sample_statement(samples_dir: Path, name: str = SAMPLE) -> tuple[Statement, StatementHeader]:
    """The M-Pesa sample statement, grouped as ``pesabridge transform`` groups it."""
    path = samples_dir / "mpesa-statement" / name
    with path.open("rb") as handle:
        items = list(get_parser("mpesa-statement").parse(handle, path.name))
    header = next(i for i in items if isinstance(i, StatementHeader))
    txns = [i.transaction for i in items if isinstance(i, Observation)]
    (statement,) = build_statements(txns, created_at=CREATED)
    return statement, header


def check_golden(name: str, data: bytes) -> None:
    """Compare with ``golden/<name>``; ``PESABRIDGE_UPDATE_GOLDEN=1`` rewrites it."""
    path = GOLDEN / name
    if os.environ.get("PESABRIDGE_UPDATE_GOLDEN") == "1" or not path.exists():
        path.write_bytes(data)
    assert data == path.read_bytes(), f"{name} differs from the golden file"


CURRENCIES = {"KES": 2, "UGX": 0, "TZS": 2, "RWF": 0}
DAY = date(2024, 5, 6)
KINDS = [
    (Entry.PAYMENT, Direction.CREDIT),
    (Entry.CHARGE, Direction.DEBIT),
    (Entry.PAYOUT, Direction.DEBIT),
    (Entry.SETTLEMENT, Direction.DEBIT),
    (Entry.REVERSAL, Direction.DEBIT),
    (Entry.REVERSAL, Direction.CREDIT),
    (Entry.DEPOSIT, Direction.CREDIT),
]
NAMES = ["JANE WANJIKU", "José Ñúñez", "Zoë Müller-Øby", "PETER O'TIENO", None]
references = st.text("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789-", min_size=1, max_size=16)


@st.composite
def statements(draw: st.DrawFn) -> Statement:
    """A valid one-day statement: 1 to 12 entries in KES, UGX, TZS or RWF."""
    currency = draw(st.sampled_from(sorted(CURRENCIES)))
    units = CURRENCIES[currency]
    count = draw(st.integers(1, 12))
    receipts = draw(
        st.lists(
            st.text("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789", min_size=10, max_size=10),
            min_size=count,
            max_size=count,
            unique=True,
        )
    )
    seconds = sorted(draw(st.lists(st.integers(0, 86_399), min_size=count, max_size=count)))
    entries = []
    for receipt, second in zip(receipts, seconds, strict=True):
        entry, direction = draw(st.sampled_from(KINDS))
        minor = draw(st.integers(1, 10**11))
        name = draw(st.sampled_from(NAMES))
        reference = draw(st.none() | references) if entry is Entry.PAYMENT else None
        when = datetime.combine(DAY, time(0), EAT) + timedelta(seconds=second)
        entries.append(
            Transaction(
                provider="mpesa",
                account="600977",
                receipt=receipt,
                entry=entry,
                direction=direction,
                amount=Decimal(minor).scaleb(-units),
                currency=currency,
                occurred_at=when,
                counterparty=Counterparty.of("25471****234", name) if name else None,
                reference=reference,
                related_receipt=receipt if entry is Entry.CHARGE else None,
            )
        )
    opening = Decimal(draw(st.integers(-(10**12), 10**12))).scaleb(-units)
    return Statement(
        account="600977",
        currency=currency,
        period_start=DAY,
        period_end=DAY,
        opening_balance=opening,
        entries=entries,
        created_at=CREATED,
    )


def signed(txn: Transaction) -> Decimal:
    return txn.amount if txn.direction is Direction.CREDIT else -txn.amount
