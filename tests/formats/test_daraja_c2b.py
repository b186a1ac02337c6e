"""The Daraja C2B parser against the reference samples and broken bodies."""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pesabridge.formats import get_parser
from pesabridge.formats.base import Observation, Reject
from pesabridge.formats.daraja_c2b import DarajaC2BParser, parse_c2b_payload
from pesabridge.model import MsisdnKind

PARSER = DarajaC2BParser()
BODY: dict[str, Any] = {
    "TransactionType": "Pay Bill",
    "TransID": "SE51H7QK2M",
    "TransTime": "20240506083015",
    "TransAmount": "1500.00",
    "BusinessShortCode": "600977",
    "BillRefNumber": "INV-2024-0107",
    "InvoiceNumber": "",
    "OrgAccountBalance": "48250.00",
    "ThirdPartyTransID": "",
    "MSISDN": "254708374149",
    "FirstName": "AMINA",
    "MiddleName": "",
    "LastName": "",
}


def c2b_samples(samples_dir: Path) -> list[Path]:
    files = sorted((samples_dir / "daraja").glob("c2b_*.json"))
    assert len(files) >= 4, "daraja c2b samples missing"
    return files


def expected(samples_dir: Path, name: str) -> list[dict[str, Any]]:
    text = (samples_dir / "expected" / "daraja" / f"{name}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def body(**changes: Any) -> bytes:
    data = {**BODY, **changes}
    return json.dumps({k: v for k, v in data.items() if v is not ...}).encode()


def reject(data: bytes) -> str:
    result = parse_c2b_payload(data, "req-1")
    assert isinstance(result, Reject), result
    assert result.raw == data
    return str(result)


def test_every_c2b_sample_yields_exactly_its_expected_transaction(samples_dir: Path) -> None:
    for path in c2b_samples(samples_dir):
        items = list(PARSER.parse(io.BytesIO(path.read_bytes()), path.name))
        got = [i.transaction.to_dict() for i in items if isinstance(i, Observation)]
        assert got == expected(samples_dir, path.name), path.name
        assert len(items) == 1
        assert isinstance(items[0], Observation)
        assert (items[0].source, items[0].line, items[0].raw) == (
            path.name,
            None,
            path.read_bytes(),
        )


def test_payload_function_matches_the_parser(samples_dir: Path) -> None:
    for path in c2b_samples(samples_dir):
        result = parse_c2b_payload(path.read_bytes(), "req-42")
        assert isinstance(result, Observation)
        assert [result.transaction.to_dict()] == expected(samples_dir, path.name)
        assert result.source == "req-42"


def test_sniff(samples_dir: Path) -> None:
    assert isinstance(get_parser("daraja-c2b"), DarajaC2BParser)
    for path in sorted((samples_dir / "daraja").glob("*.json")):
        assert PARSER.sniff(path.read_bytes(), path.name) is path.name.startswith("c2b_"), path
    statement = next((samples_dir / "mpesa-statement").glob("*.csv"))
    assert not PARSER.sniff(statement.read_bytes(), statement.name)


def test_field_mapping() -> None:
    result = parse_c2b_payload(
        body(
            TransAmount="10",
            BillRefNumber="  acc 0042 ",
            OrgAccountBalance="",
            MSISDN="2547 ***** 126",
            FirstName="John",
            MiddleName=None,
            LastName=" Doe ",
        ),
        "req",
    )
    assert isinstance(result, Observation)
    txn = result.transaction
    assert str(txn.amount) == "10.00"
    assert txn.reference == "acc 0042"
    assert txn.balance_after is None
    assert txn.counterparty is not None
    assert txn.counterparty.msisdn == "2547 ***** 126"
    assert txn.counterparty.msisdn_kind is MsisdnKind.MASKED
    assert txn.counterparty.name == "John Doe"
    assert txn.occurred_at == datetime(2024, 5, 6, 5, 30, 15, tzinfo=UTC)
    assert txn.extra == {"TransactionType": "Pay Bill"}


def test_numbers_where_strings_are_documented_are_read_exactly() -> None:
    result = parse_c2b_payload(
        body(TransAmount=250.5, TransTime=20240506083015, BusinessShortCode=850060), "req"
    )
    assert isinstance(result, Observation)
    assert result.transaction.amount == Decimal("250.50")
    assert result.transaction.account == "850060"
    assert result.transaction.occurred_at == datetime(2024, 5, 6, 5, 30, 15, tzinfo=UTC)


def test_blank_reference_and_nameless_payer() -> None:
    result = parse_c2b_payload(
        body(BillRefNumber=" ", FirstName=None, MSISDN="", BusinessShortCode=...), "r"
    )
    assert isinstance(result, Observation)
    assert result.transaction.reference is None
    assert result.transaction.counterparty is None
    assert result.transaction.account is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{", "not valid JSON: Expecting property name enclosed in double quotes"),
        (b"", "not valid JSON: Expecting value at line 1 column 1"),
        (b"\xff\xfe\x00", "not valid JSON"),
        (b"[1]", "the body is not a JSON object"),
        (body(TransAmount="abc"), "TransAmount: 'abc' is not a number"),
        (body(TransAmount="1.005"), "TransAmount: 1.005 has more decimal places than KES allows"),
        (body(TransAmount="-5"), "TransAmount: -5 is negative; direction carries the sign"),
        (body(TransAmount=...), "TransAmount: is missing"),
        (body(TransAmount=True), "TransAmount: must be a string, not bool"),
        (body(TransID=""), "TransID: is empty"),
        (body(TransID={"a": 1}), "TransID: must be a string, not dict"),
        (body(TransTime="2024-05-06"), "TransTime: '2024-05-06' is not a YYYYMMDDHHmmss time"),
        (
            body(TransTime="20240231083015"),
            "TransTime: '20240231083015' is not a valid YYYYMMDDHHmmss",
        ),
        (body(OrgAccountBalance="n/a"), "OrgAccountBalance: 'n/a' is not a number"),
        (body(FirstName=["A"]), "FirstName: must be a string, not list"),
    ],
)
def test_bad_bodies_are_rejected_never_raised(data: bytes, message: str) -> None:
    assert reject(data).startswith("req-1: " + message)


def test_a_file_with_an_array_of_bodies() -> None:
    data = json.dumps([BODY, {**BODY, "TransID": "SE51H7QK2N", "TransAmount": "x"}, 7]).encode()
    items = list(PARSER.parse(io.BytesIO(b"\xef\xbb\xbf" + data), "batch.json"))
    assert isinstance(items[0], Observation)
    assert [str(i) for i in items[1:]] == [
        "batch.json: [1].TransAmount: 'x' is not a number",
        "batch.json: [2]: is not a JSON object",
    ]


def test_parse_body_is_the_payload_function_in_a_list(samples_dir: Path) -> None:
    for path in c2b_samples(samples_dir):
        raw = path.read_bytes()
        assert PARSER.parse_body(raw, "req-7") == [parse_c2b_payload(raw, "req-7")]
    (bad,) = PARSER.parse_body(b"{", "req-7", "application/json")
    assert isinstance(bad, Reject)
