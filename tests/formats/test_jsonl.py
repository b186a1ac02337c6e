"""JSON Lines of canonical transactions: ``pesabridge parse`` output read back exactly."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from pesabridge.errors import InvalidValue
from pesabridge.formats import Observation, Reject, detect_format, get_parser
from pesabridge.formats.jsonl import JsonLinesParser
from pesabridge.model import Counterparty, Direction, Entry, Status, Transaction

PARSER = JsonLinesParser()
STATEMENT = "mpesa-statement/ORG_600977_Utility Account_Completed_20240507070000.csv"
GOOD = {
    "provider": "mpesa",
    "account": "600977",
    "receipt": "SE60A1B2C3",
    "entry": "payment",
    "direction": "credit",
    "amount": "500.00",
    "currency": "KES",
    "occurred_at": "2024-05-05T22:12:09Z",
    "counterparty": {"msisdn": "25471****234", "msisdn_kind": "masked", "name": "GRACE"},
    "reference": "00451",
    "balance_after": "13000.00",
    "status": "completed",
    "related_receipt": None,
}


def line(**changes: object) -> str:
    return json.dumps({**GOOD, **changes})


def run(text: str | bytes, source: str = "txns.jsonl") -> list[Observation | Reject]:
    data = text.encode() if isinstance(text, str) else text
    items = list(PARSER.parse(io.BytesIO(data), source))
    assert all(isinstance(i, Observation | Reject) for i in items)
    return items  # type: ignore[return-value]


def rejects(items: list[Observation | Reject]) -> list[Reject]:
    return [i for i in items if isinstance(i, Reject)]


def pesabridge(*args: str, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "pesabridge", *args],
        cwd=cwd,
        capture_output=True,
        timeout=120,
        check=False,
    )


def test_registered_and_sniffed() -> None:
    assert isinstance(get_parser("jsonl"), JsonLinesParser)
    assert get_parser("jsonl") is get_parser("jsonl")  # no options: one shared instance
    head = ("\n\n" + line() + "\n").encode()
    assert PARSER.sniff(head, "x.txt")
    assert isinstance(detect_format(head, "x.txt"), JsonLinesParser)
    assert PARSER.sniff(b"\xef\xbb\xbf" + line().encode(), "x.jsonl")
    assert not PARSER.sniff(b'{"TransID": "X", "TransAmount": "1"}', "c2b.json")
    assert not PARSER.sniff(b"[" + line().encode() + b"]", "array.json")
    assert not PARSER.sniff(b"Receipt No.,Completion Time\n", "statement.csv")
    assert not PARSER.sniff(b"", "empty.jsonl")


def test_reads_the_parse_contract() -> None:
    (item,) = run(line() + "\n")
    assert isinstance(item, Observation)
    assert item.line == 1
    assert item.raw == line().encode()
    assert item.transaction == Transaction(
        provider="mpesa",
        account="600977",
        receipt="SE60A1B2C3",
        entry=Entry.PAYMENT,
        direction=Direction.CREDIT,
        amount=Decimal("500.00"),
        currency="KES",
        occurred_at=datetime(2024, 5, 5, 22, 12, 9, tzinfo=UTC),
        counterparty=Counterparty("25471****234", None, "GRACE"),
        reference="00451",
        balance_after=Decimal("13000.00"),
        status=Status.COMPLETED,
    )


def test_round_trip_of_parse_output_through_the_cli(samples_dir: Path, tmp_path: Path) -> None:
    first = pesabridge(
        "parse", "--format", "mpesa-statement", str(samples_dir / STATEMENT), cwd=tmp_path
    )
    assert first.returncode == 0, first.stderr
    saved = tmp_path / "statement.jsonl"
    saved.write_bytes(first.stdout)
    assert len(first.stdout.splitlines()) == 12
    for fmt in ("jsonl", "auto"):
        again = pesabridge("parse", "--format", fmt, str(saved), cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert again.stderr == b""
        assert again.stdout == first.stdout  # byte for byte, in the same order


def test_round_trip_of_every_expected_sample(samples_dir: Path) -> None:
    for path in sorted((samples_dir / "expected").rglob("*.jsonl")):
        data = path.read_bytes()
        items = run(data, path.name)
        assert not rejects(items), (path, rejects(items))
        for item, text in zip(items, [x for x in data.splitlines() if x.strip()], strict=True):
            assert isinstance(item, Observation)
            assert item.transaction.to_dict() == json.loads(text)


def test_blank_lines_crlf_and_bom_are_fine() -> None:
    data = b"\xef\xbb\xbf" + line().encode() + b"\r\n\r\n   \n" + line(receipt="SE2").encode()
    items = run(data)
    assert [(i.line, type(i).__name__) for i in items] == [(1, "Observation"), (4, "Observation")]
    assert isinstance(items[1], Observation)
    assert items[1].transaction.receipt == "SE2"
    assert items[0].raw == line().encode()  # no BOM, no line end in the evidence


def test_bad_lines_rejected_with_path_and_the_rest_still_read() -> None:
    cp = {"msisdn": "2547", "msisdn_kind": "scrambled", "name": None}
    bad = [
        "{not json",
        "[1, 2]",
        '"just a string"',
        line(amount="12.345"),
        line(amount="abc"),
        line(amount=True),
        line(entry="gift"),
        line(direction=None),
        line(currency="XYZ"),
        line(occurred_at="yesterday"),
        line(occurred_at="2024-05-06T10:00:00"),
        line(counterparty=cp),
        line(counterparty="bob"),
        line(receipt=""),
        line(reference=42),
        line(status="pending"),
        line(balance_after="1.001"),
        line(colour="blue"),
        line(counterparty={"msisdn": "2547", "email": "x@y"}),
        json.dumps({k: v for k, v in GOOD.items() if k != "provider"}),
    ]
    text = "\n".join([line(receipt="FIRST"), *bad, line(receipt="LAST")]) + "\n"
    items = run(text)
    good = [i.transaction.receipt for i in items if isinstance(i, Observation)]
    assert good == ["FIRST", "LAST"]
    found = [(r.line, r.field, r.reason) for r in rejects(items)]
    assert [(ln, field) for ln, field, _ in found] == [
        (2, None),
        (3, None),
        (4, None),
        (5, "amount"),
        (6, "amount"),
        (7, "amount"),
        (8, "entry"),
        (9, "direction"),
        (10, "currency"),
        (11, "occurred_at"),
        (12, "occurred_at"),
        (13, "counterparty.msisdn_kind"),
        (14, "counterparty"),
        (15, "receipt"),
        (16, "reference"),
        (17, "status"),
        (18, "balance_after"),
        (19, "colour"),
        (20, "counterparty.email"),
        (21, "provider"),
    ]
    reasons = {ln: reason for ln, _, reason in found}
    assert reasons[2].startswith("not valid JSON")
    assert "array" in reasons[3]
    assert reasons[5] == "12.345 has more decimal places than KES allows (2)"
    assert reasons[7] == "must be a string, not boolean"
    assert "'gift' is not one of payment" in reasons[8]
    assert reasons[9] == "is missing"
    assert "has no time zone" in reasons[12]
    assert reasons[16] == "must be a string or null, not number"
    assert str(rejects(items)[0]).startswith("txns.jsonl:2: not valid JSON")
    assert rejects(items)[3].raw == line(amount="12.345").encode()


def test_numbers_are_read_as_decimals_never_floats() -> None:
    (item,) = run(json.dumps(GOOD).replace('"500.00"', "500.10").replace('"13000.00"', "13000"))
    assert isinstance(item, Observation)
    assert item.transaction.amount == Decimal("500.10")
    assert str(item.transaction.amount) == "500.10"
    assert item.transaction.balance_after == Decimal("13000.00")


def test_cp1252_bytes_in_a_name_are_not_lost() -> None:
    data = line(counterparty={"msisdn": None, "msisdn_kind": None, "name": "ZOÉ"}).encode()
    (item,) = run(data.replace("É".encode(), b"\xc9"))
    assert isinstance(item, Observation)
    assert item.transaction.counterparty == Counterparty(None, None, "ZOÉ")


def test_from_dict_is_the_inverse_of_to_dict() -> None:
    transaction = Transaction(
        provider="airtel",
        account=None,
        receipt="MP210603.1234.L06941",
        entry=Entry.REVERSAL,
        direction=Direction.DEBIT,
        amount=Decimal("5000"),
        currency="UGX",
        occurred_at=datetime(2021, 6, 3, 9, 0, 0, 123456, tzinfo=UTC),
        counterparty=Counterparty(None, None, "TECHNOLOGIES LIMITED"),
        reference=None,
        balance_after=None,
        status=Status.REVERSED,
        related_receipt="MP210602.0001.A00001",
    )
    data = transaction.to_dict()
    assert Transaction.from_dict(data) == transaction
    assert Transaction.from_dict(json.loads(json.dumps(data))).to_dict() == data
    with pytest.raises(InvalidValue) as caught:
        Transaction.from_dict({**data, "direction": "sideways"})
    assert caught.value.field == "direction"
    with pytest.raises(InvalidValue) as caught:
        Transaction.from_dict({**data, "amount": 5000.0})
    assert (caught.value.field, caught.value.message) == (
        "amount",
        "5000.0 is a float; write amounts as strings",
    )
