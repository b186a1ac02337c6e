"""camt.053 and camt.054: valid against the official XSDs, faithful when read back."""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path

import pytest
import xmlschema
from hypothesis import HealthCheck, given, settings
from lxml import etree

from pesabridge.encoders import _iso20022 as iso
from pesabridge.encoders.base import EncodeError, MessageContext, Statement
from pesabridge.encoders.camt import Camt053Encoder, Camt054Encoder
from pesabridge.encoders.registry import get_encoder
from pesabridge.errors import ConfigError
from pesabridge.model import Direction, Entry
from tests.encoders.statement_samples import (
    CREATED,
    check_golden,
    sample_statement,
    signed,
    statements,
)
from tests.helpers import txn

VERSIONS = ["02", "08"]


@pytest.fixture(scope="module")
def xsd() -> dict[tuple[str, str], xmlschema.XMLSchema]:
    return {
        (m, v): xmlschema.XMLSchema(str(iso.schema_path(m, v)))
        for m in ("camt.053", "camt.054")
        for v in VERSIONS
    }


def ns(message: str, version: str) -> dict[str, str]:
    return {"c": iso.namespace(message, version)}


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("name", "message"), [("camt053", "camt.053"), ("camt054", "camt.054")])
def test_sample_statement_is_valid_and_golden(
    samples_dir: Path,
    xsd: dict[tuple[str, str], xmlschema.XMLSchema],
    name: str,
    message: str,
    version: str,
) -> None:
    statement, _ = sample_statement(samples_dir)
    document = get_encoder(name, {"version": version}).encode_statement(statement)
    xsd[(message, version)].validate(document.decode())  # the independent validator
    check_golden(f"camt_{message[-3:]}_{version}_mpesa_sample.xml", document)


@pytest.mark.parametrize("version", VERSIONS)
def test_sample_statement_reads_back(samples_dir: Path, version: str) -> None:
    statement, header = sample_statement(samples_dir)
    root = etree.fromstring(Camt053Encoder(version=version).encode_statement(statement))
    n = ns("camt.053", version)
    stmt = root.find("c:BkToCstmrStmt/c:Stmt", n)
    assert stmt is not None
    assert stmt.findtext("c:Acct/c:Id/c:Othr/c:Id", namespaces=n) == "600977"
    assert stmt.find(".//c:IBAN", n) is None
    balances = {
        b.findtext("c:Tp/c:CdOrPrtry/c:Cd", namespaces=n): (
            Decimal(b.findtext("c:Amt", namespaces=n) or ""),
            b.findtext("c:Dt/c:Dt", namespaces=n),
        )
        for b in stmt.findall("c:Bal", n)
    }
    assert balances == {
        "OPBD": (header.opening_balance, "2024-05-06"),
        "CLBD": (header.closing_balance, "2024-05-06"),
    }
    entries = stmt.findall("c:Ntry", n)
    assert len(entries) == len(statement.entries) == 12
    assert root.find(".//c:DtTm", n) is None  # dates only: an importer crashes on DtTm
    for element, t in zip(entries, statement.entries, strict=True):
        amount = element.findtext("c:Amt", namespaces=n)
        assert amount == f"{t.amount:f}"
        assert len(amount.split(".")[1]) == 2
        indicator = element.findtext("c:CdtDbtInd", namespaces=n)
        assert indicator == ("CRDT" if t.direction is Direction.CREDIT else "DBIT")
        assert element.findtext("c:AcctSvcrRef", namespaces=n) == t.receipt
        assert element.findtext("c:BookgDt/c:Dt", namespaces=n) == "2024-05-06"
        status = "c:Sts" if version == "02" else "c:Sts/c:Cd"
        assert element.findtext(status, namespaces=n) == "BOOK"
        assert element.findtext(".//c:RmtInf/c:Ustrd", namespaces=n) == t.reference
        family = element.findtext("c:BkTxCd/c:Domn/c:Fmly/c:SubFmlyCd", namespaces=n)
        if t.entry is Entry.CHARGE:
            assert family == "CHRG"
            assert indicator == "DBIT"
        if t.entry is Entry.REVERSAL:
            assert element.findtext("c:RvslInd", namespaces=n) == "true"
            assert family == "RRTN"
        else:
            assert element.find("c:RvslInd", n) is None
        if t.counterparty and t.counterparty.name and t.direction is Direction.CREDIT:
            name = "c:Dbtr/c:Nm" if version == "02" else "c:Dbtr/c:Pty/c:Nm"
            parties = element.find(".//c:RltdPties", n)
            assert parties is not None
            assert parties.findtext(name, namespaces=n) == t.counterparty.name
    refs = [e.findtext("c:NtryRef", namespaces=n) for e in entries]
    assert len(set(refs)) == len(refs)


@pytest.mark.parametrize("version", VERSIONS)
def test_camt054_message_per_transaction(
    xsd: dict[tuple[str, str], xmlschema.XMLSchema], version: str
) -> None:
    payment = txn()
    context = MessageContext(idempotency_key="pb-600100-SLK4H7R2PQ", now=CREATED)
    document = Camt054Encoder(version=version).encode(payment, context)
    xsd[("camt.054", version)].validate(document.decode())
    n = ns("camt.054", version)
    root = etree.fromstring(document)
    assert root.findtext(".//c:GrpHdr/c:MsgId", namespaces=n) == "pb-600100-SLK4H7R2PQ"
    assert len(root.findall(".//c:Ntfctn", n)) == 1
    assert root.findtext(".//c:Ntry/c:Amt", namespaces=n) == "1500.00"
    assert root.findtext(".//c:Ntry/c:BookgDt/c:Dt", namespaces=n) == "2024-05-06"
    if version == "08":
        check_golden("camt_054_08_message.xml", document)


def test_camt054_message_needs_an_account() -> None:
    with pytest.raises(EncodeError, match="account"):
        Camt054Encoder().encode(txn(account=None), MessageContext())


def test_minor_units_exactly() -> None:
    for currency, amount, text in [("UGX", "1500", "1500"), ("KES", "1.2", "1.20")]:
        payment = txn(currency=currency, amount=Decimal(amount))
        document = Camt054Encoder().encode(payment, MessageContext(now=CREATED))
        root = etree.fromstring(document)
        assert root.findtext(".//c:Ntry/c:Amt", namespaces=ns("camt.054", "02")) == text


def test_invalid_document_is_the_schema_reason_not_bytes() -> None:
    too_long = txn(reference="R" * 141)  # Ustrd is Max140Text
    with pytest.raises(EncodeError, match=r"not valid camt\.054\.001\.02.*Ustrd.*length"):
        Camt054Encoder().encode(too_long, MessageContext(now=CREATED))


def test_balance_mismatch_is_refused(samples_dir: Path) -> None:
    statement, _ = sample_statement(samples_dir)
    missing = dataclasses.replace(statement, entries=list(statement.entries)[1:])
    with pytest.raises(EncodeError, match="balance"):
        Camt053Encoder().encode_statement(missing)


def test_unknown_currency_is_refused(samples_dir: Path) -> None:
    statement, _ = sample_statement(samples_dir)
    with pytest.raises(EncodeError, match="'XYZ' is not a known ISO 4217"):
        Camt053Encoder().encode_statement(dataclasses.replace(statement, currency="XYZ"))


def test_entry_outside_the_period_is_refused(samples_dir: Path) -> None:
    statement, _ = sample_statement(samples_dir)
    later = dataclasses.replace(
        statement,
        period_start=statement.period_end.replace(day=7),
        period_end=statement.period_end.replace(day=7),
    )
    with pytest.raises(EncodeError, match="outside the statement period"):
        Camt053Encoder().encode_statement(later)


def test_bad_option_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="version"):
        Camt053Encoder(version="07")
    with pytest.raises(ConfigError, match="timezone"):
        Camt053Encoder(timezone="Mars/Olympus")


def test_encode_to_file_appears_only_when_valid(samples_dir: Path, tmp_path: Path) -> None:
    statement, _ = sample_statement(samples_dir)
    target = tmp_path / "statement.xml"
    Camt053Encoder(version="08").encode_statement_to(statement, target)
    assert target.read_bytes() == Camt053Encoder(version="08").encode_statement(statement)
    bad = dataclasses.replace(statement, statement_id="X" * 40)  # Max35Text
    with pytest.raises(EncodeError, match="not valid"):
        Camt053Encoder().encode_statement_to(bad, tmp_path / "bad.xml")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["statement.xml"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(statement=statements())
def test_random_statements_round_trip(statement: Statement) -> None:
    for version in VERSIONS:
        root = etree.fromstring(Camt053Encoder(version=version).encode_statement(statement))
        n = ns("camt.053", version)
        entries = root.findall(".//c:Ntry", n)
        assert len(entries) == len(statement.entries)
        total = Decimal(0)
        for element, t in zip(entries, statement.entries, strict=True):
            amount = Decimal(element.findtext("c:Amt", namespaces=n) or "")
            sign = 1 if element.findtext("c:CdtDbtInd", namespaces=n) == "CRDT" else -1
            assert sign * amount == signed(t)
            assert amount.as_tuple().exponent == -{"KES": 2, "TZS": 2}.get(t.currency, 0)
            assert element.findtext("c:BookgDt/c:Dt", namespaces=n) == "2024-05-06"
            assert element.findtext("c:AcctSvcrRef", namespaces=n) == t.receipt
            assert element.findtext(".//c:RmtInf/c:Ustrd", namespaces=n) == t.reference
            total += sign * amount
        (closing,) = (
            b
            for b in root.iterfind(".//c:Bal", n)
            if b.findtext("c:Tp/c:CdOrPrtry/c:Cd", namespaces=n) == "CLBD"
        )
        value = Decimal(closing.findtext("c:Amt", namespaces=n) or "")
        if closing.findtext("c:CdtDbtInd", namespaces=n) == "DBIT":
            value = -value
        assert value == statement.opening_balance + total == statement.closing_balance
