"""MT940: read back by the independent ``mt-940`` parser with the same numbers."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import mt940
import pytest
from hypothesis import HealthCheck, given, settings

from pesabridge.encoders.base import EncodeError, Statement
from pesabridge.encoders.mt940 import Mt940Encoder, swift_x
from pesabridge.encoders.registry import get_encoder
from pesabridge.encoders.statements import build_statements
from pesabridge.model import Counterparty, Entry, Transaction
from tests.encoders.statement_samples import check_golden, sample_statement, signed, statements
from tests.helpers import txn


def parse(document: bytes) -> mt940.models.Transactions:
    transactions = mt940.models.Transactions(options=mt940.Options(reversal_sign=True))
    transactions.parse(document.decode("ascii"))
    return transactions


def test_sample_statement_reads_back(samples_dir: Path) -> None:
    statement, header = sample_statement(samples_dir)
    document = get_encoder("mt940").encode_statement(statement)
    check_golden("mt940_mpesa_sample.sta", document)
    parsed = parse(document)
    assert parsed.data["account_identification"] == "600977"
    assert parsed.data["final_opening_balance"].amount.amount == header.opening_balance
    assert parsed.data["final_closing_balance"].amount.amount == header.closing_balance
    assert parsed.data["available_balance"].amount.amount == header.closing_balance
    assert len(parsed) == len(statement.entries) == 12
    for row, t in zip(parsed, statement.entries, strict=True):
        assert row.data["amount"].amount == signed(t)
        assert row.data["currency"] == "KES"
        assert str(row.data["date"]) == "2024-05-06"
        assert row.data["bank_reference"] == t.receipt
        assert row.data["customer_reference"] == (t.reference or "NONREF")
        assert row.data["id"] == ("NCHG" if t.entry is Entry.CHARGE else "NTRF")
        assert row.data["status"] == (
            "RC" if t.entry is Entry.REVERSAL else t.direction.value[0].upper()
        )
        details = row.data["transaction_details"]
        assert f"RECEIPT {t.receipt}" in details
        assert "-" not in details.splitlines()[-1][:1]
        if t.reference:
            assert f"REF {t.reference}" in details
    lines = document.decode().split("\r\n")
    assert all(len(line) <= 65 for line in lines if not line.startswith(":61:"))


def test_swift_x_transliteration() -> None:
    assert swift_x("José Ñúñez & Søn_Ltd*") == "Jose Nunez + Son-Ltd."
    assert swift_x("Straße €5") == "Strasse .5"


def test_names_are_transliterated_in_the_file() -> None:
    statement = _one(txn())
    named = dataclasses.replace(
        statement,
        entries=[dataclasses.replace(statement.entries[0], counterparty=_party("Zoë Müller"))],
    )
    text = Mt940Encoder().encode_statement(named).decode("ascii")
    assert "Zoe Muller" in text


def test_reference_too_long_is_refused_unless_truncation_asked() -> None:
    statement = _one(txn(reference="INVOICE-2024-000123"))
    with pytest.raises(EncodeError, match="truncate_references") as caught:
        Mt940Encoder().encode_statement(statement)
    assert caught.value.field == "reference"
    assert caught.value.receipt == "SLK4H7R2PQ"
    document = Mt940Encoder(truncate_references=True).encode_statement(statement)
    (row,) = parse(document)
    assert row.data["customer_reference"] == "INVOICE-2024-000"
    assert "REF INVOICE-2024-000123" in row.data["transaction_details"]


def test_balance_mismatch_is_refused(samples_dir: Path) -> None:
    statement, _ = sample_statement(samples_dir)
    wrong = dataclasses.replace(statement, opening_balance=statement.opening_balance + 1)
    with pytest.raises(EncodeError, match="closing balance"):
        Mt940Encoder().encode_statement(wrong)


def test_unknown_currency_is_refused(samples_dir: Path) -> None:
    statement, _ = sample_statement(samples_dir)
    with pytest.raises(EncodeError, match="ISO 4217"):
        Mt940Encoder().encode_statement(dataclasses.replace(statement, currency="KSH"))


def test_currency_without_minor_units_keeps_the_comma() -> None:
    statement = _one(txn(currency="UGX", amount=Decimal(1500)))
    assert b":61:2405060506C1500,NTRFINV-1001//SLK4H7R2PQ" in Mt940Encoder().encode_statement(
        statement
    )


def test_plain_marks_for_reversals_on_request(samples_dir: Path) -> None:
    statement, _ = sample_statement(samples_dir)
    document = Mt940Encoder(reversal_marks=False).encode_statement(statement)
    statuses = {row.data["status"] for row in parse(document)}
    assert statuses == {"C", "D"}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(statement=statements())
def test_random_statements_round_trip(statement: Statement) -> None:
    parsed = parse(Mt940Encoder().encode_statement(statement))
    assert parsed.data["final_opening_balance"].amount.amount == statement.opening_balance
    assert parsed.data["final_closing_balance"].amount.amount == statement.closing_balance
    assert len(parsed) == len(statement.entries)
    for row, t in zip(parsed, statement.entries, strict=True):
        assert row.data["amount"].amount == signed(t)
        assert str(row.data["date"]) == "2024-05-06"
        assert row.data["bank_reference"] == t.receipt
        assert row.data["customer_reference"] == (t.reference or "NONREF")


def _party(name: str) -> Counterparty:
    return Counterparty(msisdn="254712345678", name=name)


def _one(t: Transaction) -> Statement:
    (statement,) = build_statements([t])
    return statement
