"""OFX 2.2 XML and 1.0.2 SGML: read back by ``ofxtools``' strict parser."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from ofxtools.Parser import OFXTree

from pesabridge.encoders.base import EncodeError, Statement
from pesabridge.encoders.ofx import OfxEncoder
from pesabridge.encoders.registry import get_encoder
from pesabridge.errors import ConfigError
from pesabridge.model import Entry
from tests.encoders.statement_samples import check_golden, sample_statement, signed, statements

VERSIONS = ["220", "102"]


def parse(document: bytes, tmp_path: Path) -> Any:
    path = tmp_path / "statement.ofx"
    path.write_bytes(document)
    tree = OFXTree()
    tree.parse(str(path))
    (statement,) = tree.convert().statements
    return statement


@pytest.mark.parametrize("version", VERSIONS)
def test_sample_statement_reads_back(samples_dir: Path, tmp_path: Path, version: str) -> None:
    statement, header = sample_statement(samples_dir)
    document = get_encoder("ofx", {"version": version}).encode_statement(statement)
    check_golden(f"ofx_{version}_mpesa_sample.ofx", document)
    parsed = parse(document, tmp_path)
    assert parsed.curdef == "KES"
    assert parsed.account.acctid == "600977"
    assert parsed.ledgerbal.balamt == header.closing_balance
    assert parsed.ledgerbal.dtasof == header.period_end
    rows = parsed.transactions
    assert len(rows) == len(statement.entries) == 12
    fitids = [row.fitid for row in rows]
    assert len(set(fitids)) == len(fitids)
    for row, t in zip(rows, statement.entries, strict=True):
        assert row.trnamt == signed(t)
        assert row.dtposted == t.occurred_at
        assert row.fitid == (f"{t.receipt}-CHG" if t.entry is Entry.CHARGE else t.receipt)
        assert row.trntype == {"charge": "FEE", "settlement": "XFER"}.get(
            t.entry.value, "CREDIT" if t.direction.value == "credit" else "DEBIT"
        )
        if t.reference:
            assert row.memo == t.reference
        if t.counterparty and t.counterparty.name:
            assert row.name == t.counterparty.name[:32]


def test_dtposted_carries_the_zone(samples_dir: Path) -> None:
    statement, _ = sample_statement(samples_dir)
    document = OfxEncoder().encode_statement(statement)
    assert b"<DTPOSTED>20240506011209.000[+3:EAT]</DTPOSTED>" in document


def test_long_names_are_cut_to_32(samples_dir: Path, tmp_path: Path) -> None:
    statement, _ = sample_statement(samples_dir)
    first = statement.entries[0]
    assert first.counterparty is not None
    long_name = dataclasses.replace(first.counterparty, name="N" * 40)
    entries = [dataclasses.replace(first, counterparty=long_name), *statement.entries[1:]]
    parsed = parse(
        OfxEncoder().encode_statement(dataclasses.replace(statement, entries=entries)), tmp_path
    )
    assert parsed.transactions[0].name == "N" * 32


def test_balance_mismatch_is_refused(samples_dir: Path) -> None:
    statement, _ = sample_statement(samples_dir)
    with pytest.raises(EncodeError, match="balance"):
        OfxEncoder().encode_statement(
            dataclasses.replace(statement, opening_balance=Decimal("0.00"))
        )


def test_unknown_currency_and_bad_options(samples_dir: Path) -> None:
    statement, _ = sample_statement(samples_dir)
    with pytest.raises(EncodeError, match="ISO 4217"):
        OfxEncoder().encode_statement(dataclasses.replace(statement, currency="KSH"))
    with pytest.raises(ConfigError, match="version"):
        OfxEncoder(version="1.6")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(statement=statements())
def test_random_statements_round_trip(
    statement: Statement, tmp_path_factory: pytest.TempPathFactory
) -> None:
    for version in VERSIONS:
        parsed = parse(
            OfxEncoder(version=version).encode_statement(statement),
            tmp_path_factory.mktemp("ofx"),
        )
        assert parsed.curdef == statement.currency
        assert parsed.ledgerbal.balamt == statement.closing_balance
        for row, t in zip(parsed.transactions, statement.entries, strict=True):
            assert row.trnamt == signed(t)
            assert row.dtposted == t.occurred_at
            assert row.fitid.startswith(t.receipt)
            if t.reference:
                assert row.memo == t.reference
