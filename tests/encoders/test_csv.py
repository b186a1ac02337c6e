"""CSV encoder: columns, labels, delimiters, exact amounts, formula injection."""

from __future__ import annotations

import csv
import io
import os
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from pesabridge.encoders.base import MessageContext, Statement
from pesabridge.encoders.csv import COLUMNS, DEFAULT_COLUMNS, CsvEncoder
from pesabridge.encoders.options import EncoderOptionsError
from pesabridge.model import Counterparty, Direction, Entry
from tests.helpers import txn

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("PESABRIDGE_UPDATE_GOLDEN") == "1"


def rows(data: bytes, delimiter: str = ",") -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode()), delimiter=delimiter))


def entries() -> list:  # type: ignore[type-arg]
    return [
        txn("SE60A1B2C3", amount=Decimal("500.00"), balance_after=Decimal("13000.00")),
        txn(
            "SE60A1B2C3",
            entry=Entry.CHARGE,
            direction=Direction.DEBIT,
            amount=Decimal("2.50"),
            balance_after=Decimal("12997.50"),
            counterparty=None,
            reference=None,
            related_receipt="SE60A1B2C3",
        ),
    ]


def test_golden_statement() -> None:
    statement = Statement(
        account="600100",
        currency="KES",
        period_start=date(2024, 5, 6),
        period_end=date(2024, 5, 6),
        opening_balance=Decimal("12500.00"),
        entries=entries(),
    )
    body = CsvEncoder().encode_statement(statement)
    path = GOLDEN / "statement.csv"
    if UPDATE or not path.exists():
        path.write_bytes(body)
    assert body == path.read_bytes()
    assert rows(body)[0] == DEFAULT_COLUMNS
    assert body.count(b"\r\n") == 3


def test_columns_labels_delimiter_decimal_point() -> None:
    encoder = CsvEncoder(
        columns="local_date,local_time,receipt,signed_amount,balance_after,reference",
        labels={"signed_amount": "Amount (KES)", "local_date": "Date"},
        delimiter=";",
        decimal_point=",",
        line_terminator="lf",
    )
    body = encoder.encode_batch(entries())
    assert body.decode() == (
        "Date;local_time;receipt;Amount (KES);balance_after;reference\n"
        "2024-05-06;21:05:59;SE60A1B2C3;500,00;13000,00;INV-1001\n"
        "2024-05-06;21:05:59;SE60A1B2C3;-2,50;12997,50;\n"
    )


def test_one_row_per_transaction() -> None:
    encoder = CsvEncoder(columns=["receipt", "amount", "currency"])
    assert encoder.encode(txn(), MessageContext()) == b"SLK4H7R2PQ,1500.00,KES\r\n"
    ugx = txn(amount=Decimal("5000"), currency="UGX")
    assert encoder.encode(ugx, MessageContext()) == b"SLK4H7R2PQ,5000,UGX\r\n"
    assert CsvEncoder(columns="receipt", header="false").encode_batch([txn()]) == b"SLK4H7R2PQ\r\n"


@pytest.mark.parametrize(
    "payload",
    ['=HYPERLINK("http://x")', "+254700000000", "-2+3", "@SUM(A1)", "\tx", "\rx", "=1+1"],
)
def test_formula_injection_is_neutralised(payload: str) -> None:
    t = txn(
        reference=None,
        counterparty=Counterparty(msisdn=None, name=payload),
        related_receipt=payload,
    )
    encoder = CsvEncoder(columns="counterparty.name,related_receipt,signed_amount")
    [[name, related, amount]] = rows(encoder.encode(t, MessageContext()))
    assert name == "'" + payload
    assert related == "'" + payload
    assert amount == "1500.00"


def test_numbers_are_never_prefixed() -> None:
    debit = txn(direction=Direction.DEBIT, balance_after=Decimal("-20.00"))
    encoder = CsvEncoder(columns="signed_amount,balance_after")
    assert encoder.encode(debit, MessageContext()) == b"-1500.00,-20.00\r\n"


def test_a_delimiter_inside_a_value_is_quoted() -> None:
    encoder = CsvEncoder(columns="reference,amount", decimal_point=",", delimiter=";")
    [[reference, amount]] = rows(encoder.encode(txn(reference='A;B "C"'), MessageContext()), ";")
    assert (reference, amount) == ('A;B "C"', "1500,00")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"columns": "receipt,colour"}, "unknown columns colour"),
        ({"delimiter": ",", "decimal_point": ","}, "must differ"),
        ({"decimal_point": "·"}, "decimal_point"),
        ({"delimiter": "ab"}, "one character"),
        ({"labels": {"amount": "A"}, "columns": "receipt"}, "labels"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_bad_options(options: dict[str, object], message: str) -> None:
    with pytest.raises(EncoderOptionsError, match=message):
        CsvEncoder(**options)


def test_every_column_renders() -> None:
    body = CsvEncoder(columns=list(COLUMNS)).encode(txn(), MessageContext())
    assert len(rows(body)[0]) == len(COLUMNS)
