"""The canonical transaction refuses what it cannot represent exactly, and says why."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pesabridge.errors import InvalidValue
from pesabridge.model import (
    EAT,
    Counterparty,
    MsisdnKind,
    Transaction,
    classify_msisdn,
    mask_msisdn,
    minor_units,
    numeric_code,
)

from ..helpers import txn


def test_amounts_carry_exactly_the_currencys_minor_units() -> None:
    assert str(txn(amount=Decimal("10")).amount) == "10.00"
    assert str(txn(amount=Decimal("100.0"), currency="UGX").amount) == "100"
    assert str(txn(amount=Decimal("250.5")).amount) == "250.50"
    assert (minor_units("KES"), minor_units("UGX"), numeric_code("KES")) == (2, 0, "404")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"amount": Decimal("1.005")}, "amount: 1.005 has more decimal places than KES allows (2)"),
        (
            {"amount": Decimal("100.5"), "currency": "UGX"},
            "more decimal places than UGX allows (0)",
        ),
        ({"amount": Decimal("-5")}, "amount: -5 is negative; direction carries the sign"),
        ({"amount": 5.0}, "amount: must be a Decimal, not float"),
        ({"currency": "XYZ"}, "currency: 'XYZ' is not a known ISO 4217 code"),
        (
            {"occurred_at": datetime(2024, 5, 6, 9, 0)},
            "occurred_at: 2024-05-06 09:00:00 has no time zone",
        ),
        ({"receipt": "  "}, "receipt: is empty"),
        ({"entry": "gift"}, "entry: 'gift' is not one of payment"),
        ({"reference": "x" * 201}, "reference: is 201 characters; at most 200 are kept"),
        ({"receipt": "R" * 65}, "receipt: is 65 characters; at most 64 are kept"),
    ],
)
def test_invalid_values_are_refused_naming_the_field(
    changes: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidValue) as caught:
        txn(**changes)
    assert message in str(caught.value)


def test_counterparty_limits() -> None:
    with pytest.raises(InvalidValue, match=r"counterparty.msisdn: is 160 characters; at most 128"):
        Counterparty(msisdn="2547" * 40)


def test_times_are_stored_in_utc() -> None:
    nairobi = txn(occurred_at=datetime(2024, 5, 6, 1, 12, 9, tzinfo=EAT))
    assert nairobi.occurred_at == datetime(2024, 5, 5, 22, 12, 9, tzinfo=UTC)
    assert nairobi.occurred_at is not None
    assert nairobi.occurred_at.tzinfo is UTC
    assert nairobi.to_dict()["occurred_at"] == "2024-05-05T22:12:09Z"


def test_identity_and_round_trip() -> None:
    original = txn(account=None, reference="  00451 ")
    assert original.identity == ("mpesa", "", "SLK4H7R2PQ", "payment")
    assert original.reference == "00451"  # trimmed, leading zeros kept
    assert Transaction.from_dict(original.to_dict()) == original


@pytest.mark.parametrize(
    ("msisdn", "kind", "masked"),
    [
        ("254712345678", MsisdnKind.PLAIN, "2547****5678"),
        ("+254722000555", MsisdnKind.PLAIN, "+254****0555"),
        ("2547 ***** 126", MsisdnKind.MASKED, "2547 ***** 126"),
        (
            "7132104d6aae9c3fac82095a42c2817952bca48e09d98d5bf4ac08218982fb90",
            MsisdnKind.HASHED,
            "7132104d…",
        ),
    ],
)
def test_msisdn_kinds_and_masking(msisdn: str, kind: MsisdnKind, masked: str) -> None:
    assert classify_msisdn(msisdn) is kind
    assert mask_msisdn(msisdn) == masked
    assert "712345" not in txn(counterparty=Counterparty.of("254712345678", "JANE")).describe()


@given(
    minor=st.integers(min_value=0, max_value=10**12),
    currency=st.sampled_from(["KES", "UGX", "TZS", "RWF"]),
    offset=st.integers(min_value=-12, max_value=14),
)
def test_fast_constructor_builds_the_same_transaction(
    minor: int, currency: str, offset: int
) -> None:
    amount = Decimal(minor).scaleb(-minor_units(currency))
    moment = datetime(2024, 5, 6, 9, 0, tzinfo=timezone(timedelta(hours=offset))).astimezone(UTC)
    fields = txn(amount=amount, currency=currency, occurred_at=moment)
    built = Transaction.fast(
        fields.provider,
        fields.account,
        fields.receipt,
        fields.entry,
        fields.direction,
        amount,
        currency,
        moment,
        fields.counterparty,
        fields.reference,
    )
    assert built == fields
    assert built.amount == amount
