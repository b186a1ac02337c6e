"""The M-Pesa statement parser against the reference samples and files as found in the wild."""

from __future__ import annotations

import io
import json
import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pesabridge.formats import get_parser
from pesabridge.formats.base import Observation, ParseItem, Reject, StatementHeader
from pesabridge.formats.mpesa_statement import MpesaStatementParser
from pesabridge.model import Counterparty, Direction, Entry, Status, Transaction

PARSER = MpesaStatementParser()
SAMPLE = "ORG_600977_Utility Account_Completed_20240507070000"
HEADER_13 = (
    "Receipt No.,Completion Time,Initiation Time,Details,Transaction Status,Paid In,Withdrawn,"
    "Balance,Balance Confirmed,Reason Type,Other Party Info,Linked Transaction ID,A/C No."
)
PREAMBLE = [
    "Account Holder:,Fictional Water Services Ltd",
    "Short Code:,600977",
    "Account:,Utility Account",
    "Time Period:,From,06-05-2024 00:00:00,To,06-05-2024 23:59:59",
    'Opening Balance:,"12,500.00",Closing Balance:,"13,000.00"',
]
PAYMENT = (
    "SE60A1B2C3,06-05-2024 01:12:09,06-05-2024 01:12:09,"
    "Pay Bill from 25471****234 - GRACE **** WANJIRU Acc. 00451,Completed,500.00,,"
    '"13,000.00",true,Pay Utility,25471****234 - GRACE **** WANJIRU,,00451'
)
CHARGE = (
    "SE60A1B2C3,06-05-2024 01:12:09,06-05-2024 01:12:09,Pay Bill Charge,Completed,,-2.50,"
    '"12,997.50",true,Pay Utility,SP,,'
)


def run(data: bytes, source: str = "statement.csv") -> list[ParseItem]:
    return list(PARSER.parse(io.BytesIO(data), source))


def observations(items: list[ParseItem]) -> list[Observation]:
    return [i for i in items if isinstance(i, Observation)]


def rejects(items: list[ParseItem]) -> list[Reject]:
    return [i for i in items if isinstance(i, Reject)]


def canonical(items: list[ParseItem]) -> set[str]:
    return {json.dumps(o.transaction.to_dict(), sort_keys=True) for o in observations(items)}


def expected(samples_dir: Path, relative: str) -> set[str]:
    path = samples_dir / "expected" / f"{relative}.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    return {json.dumps(json.loads(line), sort_keys=True) for line in lines if line.strip()}


def statement(*rows: str, preamble: list[str] = PREAMBLE, header: str = HEADER_13) -> str:
    return "\r\n".join([*preamble, header, *rows]) + "\r\n"


def only(items: list[ParseItem]) -> Transaction:
    found = observations(items)
    assert len(found) == 1, items
    return found[0].transaction


# --- reference samples ------------------------------------------------------------------


def statement_samples(samples_dir: Path) -> list[Path]:
    files = sorted((samples_dir / "mpesa-statement").iterdir())
    assert files, "no mpesa-statement samples"
    return files


def test_every_sample_yields_exactly_its_expected_transactions(samples_dir: Path) -> None:
    for path in statement_samples(samples_dir):
        items = run(path.read_bytes(), path.name)
        assert rejects(items) == [], path.name
        assert isinstance(items[0], StatementHeader), path.name
        assert sum(isinstance(i, StatementHeader) for i in items) == 1
        assert canonical(items) == expected(samples_dir, f"mpesa-statement/{path.name}"), path.name
        # no two rows collapse into one: the charge and its payment share a receipt
        assert len(observations(items)) == len(canonical(items))


def test_xlsx_yields_exactly_the_csvs_transactions(samples_dir: Path) -> None:
    folder = samples_dir / "mpesa-statement"
    from_csv = run((folder / f"{SAMPLE}.csv").read_bytes(), f"{SAMPLE}.csv")
    from_xlsx = run((folder / f"{SAMPLE}.xlsx").read_bytes(), f"{SAMPLE}.xlsx")
    assert rejects(from_xlsx) == []
    assert canonical(from_xlsx) == canonical(from_csv)
    assert from_xlsx[0] == StatementHeader(
        source=f"{SAMPLE}.xlsx",
        provider="mpesa",
        account="600977",
        holder="Fictional Water Services Ltd",
        period_start=datetime(2024, 5, 5, 21, 0, tzinfo=UTC),
        period_end=datetime(2024, 5, 6, 20, 59, 59, tzinfo=UTC),
        opening_balance=Decimal("12500.00"),
        closing_balance=Decimal("19201.65"),
        currency="KES",
    )


def test_header_evidence_and_line_numbers(samples_dir: Path) -> None:
    path = samples_dir / "mpesa-statement" / f"{SAMPLE}.csv"
    items = run(path.read_bytes(), path.name)
    header = items[0]
    assert isinstance(header, StatementHeader)
    assert (header.account, header.currency) == ("600977", "KES")
    assert header.opening_balance == Decimal("12500.00")
    assert header.closing_balance == Decimal("19201.65")
    first = observations(items)[0]
    lines = path.read_bytes().split(b"\n")
    assert first.source == path.name
    assert first.line == 8  # 6 preamble rows, the column header, then the first row
    assert first.raw == lines[7].rstrip(b"\r")
    assert first.location == f"{path.name}:8"


def test_registered_and_sniffed(samples_dir: Path) -> None:
    assert isinstance(get_parser("mpesa-statement"), MpesaStatementParser)
    for path in statement_samples(samples_dir):
        assert PARSER.sniff(path.read_bytes()[:65536], path.name), path.name
    daraja = samples_dir / "daraja" / "c2b_confirmation_v1_hashed.json"
    assert not PARSER.sniff(daraja.read_bytes(), daraja.name)


# --- statement files in the wild --------------------------------------------------------


def test_bom_crlf_and_trailing_comma_only_lines_are_read_silently(samples_dir: Path) -> None:
    original = (samples_dir / "mpesa-statement" / f"{SAMPLE}.csv").read_bytes()
    text = original.decode("utf-8").replace("\r\n", "\n").replace("\n", "\r\n")
    wild = b"\xef\xbb\xbf" + text.encode() + b",,,,,,,,,,,,\r\n,,\r\n\r\n   \r\n"
    items = run(wild, f"{SAMPLE}.csv")
    assert rejects(items) == []
    assert canonical(items) == canonical(run(original, f"{SAMPLE}.csv"))


def test_windows_1252_names(tmp_path: Path) -> None:
    row = PAYMENT.replace("GRACE **** WANJIRU", "JOSÉ **** MUÑOZ")
    path = tmp_path / "ORG_600977_cp1252.csv"
    path.write_bytes(statement(row, CHARGE).encode("cp1252"))
    with path.open("rb") as f:
        items = list(PARSER.parse(f, path.name))
    assert rejects(items) == []
    payment = next(o for o in observations(items) if o.transaction.entry is Entry.PAYMENT)
    assert payment.transaction.counterparty == Counterparty.of("25471****234", "JOSÉ **** MUÑOZ")
    assert "JOSÉ".encode() in payment.raw  # evidence is re-encoded as UTF-8


def test_utf8_and_cp1252_bytes_in_one_file() -> None:
    # A UTF-8 export later edited on Windows: each line decodes on its own terms.
    rows = [PAYMENT.replace("GRACE", "ZOË"), CHARGE]
    data = statement(*rows).encode("utf-8").replace(b"WANJIRU", "WANJIRÚ".encode("cp1252"))
    names = {
        o.transaction.counterparty.name
        for o in observations(run(data))
        if o.transaction.counterparty
    }
    assert names == {"ZOË **** WANJIRÚ"}


def test_failed_rows_are_kept_with_status_failed() -> None:
    row = PAYMENT.replace("Completed", "Failed")
    txn = only(run(statement(row).encode()))
    assert txn.status is Status.FAILED
    assert txn.amount == Decimal("500.00")


def test_excel_resave_with_slashed_dates_and_bare_numbers() -> None:
    rows = [
        "SE60A1B2C3,06/05/2024 01:12,06/05/2024 01:12,Pay Bill from 25471****234 - GRACE "
        "Acc. 00451,Completed,1500,,13000,TRUE,Pay Utility,25471****234 - GRACE,,451",
        "SE60A1B2C3,06/05/2024 01:12:09,06/05/2024 01:12,Pay Bill Charge,Completed,,2.5,12997.5,"
        "TRUE,Pay Utility,SP,,",
        "SE60A1B2C4,6/5/2024 9:05,6/5/2024 9:05,Pay Bill from 2547 - X Acc. 1,Completed,"
        "1.5E+3,,14497.5,TRUE,Pay Utility,2547 - X,,1",
    ]
    items = run(statement(*rows).encode())
    assert rejects(items) == []
    payment, charge, third = (o.transaction for o in observations(items))
    assert payment.occurred_at == datetime(2024, 5, 5, 22, 12, tzinfo=UTC)
    assert payment.amount == Decimal("1500.00")
    assert str(payment.amount) == "1500.00"
    assert payment.balance_after == Decimal("13000.00")
    assert payment.reference == "451"
    assert charge.occurred_at == datetime(2024, 5, 5, 22, 12, 9, tzinfo=UTC)
    assert (charge.entry, charge.direction, charge.amount) == (
        Entry.CHARGE,
        Direction.DEBIT,
        Decimal("2.50"),
    )
    assert third.occurred_at == datetime(2024, 5, 6, 6, 5, tzinfo=UTC)
    assert str(third.amount) == "1500.00"


def test_thousands_separators() -> None:
    row = PAYMENT.replace(",500.00,", ',"1,234,567.50",').replace('"13,000.00"', '"1,247,567.50"')
    txn = only(run(statement(row).encode()))
    assert str(txn.amount) == "1234567.50"
    assert str(txn.balance_after) == "1247567.50"


def write_xlsx(path: Path, rows: list[list[Any]], title: str = "transaction") -> None:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.title = title
    for row in rows:
        sheet.append(row)
    workbook.save(path)


def test_xlsx_with_typed_cells(tmp_path: Path) -> None:
    path = tmp_path / "statement.xlsx"
    write_xlsx(
        path,
        [
            ["Account Holder:", "Typed Ltd"],
            ["Short Code:", 850060],
            ["Time Period:", "From", datetime(2024, 5, 6), "To", datetime(2024, 5, 6, 23, 59, 59)],
            ["Opening Balance:", 12500, "Closing Balance:", 12997.5],
            HEADER_13.split(","),
            [
                "SE60A1B2C3",
                datetime(2024, 5, 6, 1, 12, 8, 999_999),  # Excel's float day fraction
                datetime(2024, 5, 6, 1, 12, 9),
                "Pay Bill from 25471****234 - GRACE Acc. 850060",
                "Completed",
                500.1,
                None,
                13000.1,
                True,
                "Pay Utility",
                "25471****234 - GRACE",
                None,
                850060,
            ],
            [
                "SE60A1B2C3",
                datetime(2024, 5, 6, 1, 12, 9),
                datetime(2024, 5, 6, 1, 12, 9),
                "Pay Bill Charge",
                "Completed",
                None,
                -2.6,
                12997.5,
                True,
                "Pay Utility",
                "SP",
                None,
                None,
            ],
        ],
    )
    with path.open("rb") as f:
        items = list(PARSER.parse(f, path.name))
    assert rejects(items) == []
    header = items[0]
    assert isinstance(header, StatementHeader)
    assert header.account == "850060"
    assert header.period_start == datetime(2024, 5, 5, 21, 0, tzinfo=UTC)
    payment, charge = (o.transaction for o in observations(items))
    assert payment.account == "850060"
    assert payment.reference == "850060"
    assert str(payment.amount) == "500.10"  # via repr(float), never float arithmetic
    assert str(payment.balance_after) == "13000.10"
    assert payment.occurred_at == datetime(2024, 5, 5, 22, 12, 9, tzinfo=UTC)
    assert str(charge.amount) == "2.60"
    assert observations(items)[0].line == 6


def test_xlsx_from_a_non_seekable_stream(samples_dir: Path) -> None:
    data = (samples_dir / "mpesa-statement" / f"{SAMPLE}.xlsx").read_bytes()

    class Pipe(io.RawIOBase):
        def __init__(self) -> None:
            self._inner = io.BytesIO(data)

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            chunk = self._inner.read(min(len(buffer), 1000))
            buffer[: len(chunk)] = chunk
            return len(chunk)

    items = list(PARSER.parse(io.BufferedReader(Pipe()), f"{SAMPLE}.xlsx"))  # type: ignore[arg-type]
    assert len(observations(items)) == 12


def test_csv_from_a_non_seekable_stream(samples_dir: Path) -> None:
    data = (samples_dir / "mpesa-statement" / f"{SAMPLE}.csv").read_bytes()
    reader, writer = os.pipe()
    with open(writer, "wb") as w:
        w.write(data)
    with open(reader, "rb") as r:
        items = list(PARSER.parse(r, f"{SAMPLE}.csv"))
    assert canonical(items) == canonical(run(data, f"{SAMPLE}.csv"))


def test_legacy_mpesa_1g_layout() -> None:
    text = "\r\n".join(
        [
            "Account Holder:,Fictional SACCO",
            "Short Code:,123456",
            "Transactions",
            "Receipt,Date,Details,Status,Withdrawn,Paid In,Balance,Balance Confirmed,"
            "Transaction Type,Other Party Info,Transaction Party Details",
            "BX12AB34CD,2011-03-04 10:11:12,Pay Bill from 254712345678 - JOHN DOE,Completed,,"
            "1000.00,5000.00,true,Pay Bill,254712345678 - JOHN DOE,12345678 LN01 SV01",
            "BX12AB34CD,2011-03-04 10:11:12,Pay Bill Charge,Completed,-10.00,,4990.00,true,"
            "Pay Bill Charge,SP,",
        ]
    )
    items = run(text.encode(), "mpesa-1g.csv")
    assert rejects(items) == []
    payment, charge = (o.transaction for o in observations(items))
    assert payment.account == "123456"
    assert payment.reference == "12345678 LN01 SV01"
    assert payment.occurred_at == datetime(2011, 3, 4, 7, 11, 12, tzinfo=UTC)
    assert payment.counterparty == Counterparty.of("254712345678", "JOHN DOE")
    assert (payment.entry, payment.direction, str(payment.amount)) == (
        Entry.PAYMENT,
        Direction.CREDIT,
        "1000.00",
    )
    assert (charge.entry, charge.related_receipt, str(charge.amount)) == (
        Entry.CHARGE,
        "BX12AB34CD",
        "10.00",
    )
    bad = run(
        text.replace(
            "2011-03-04 10:11:12,Pay Bill Charge", "2011-02-30 10:11:12,Pay Bill Charge"
        ).encode(),
        "1g.csv",
    )
    assert [str(r) for r in rejects(bad)] == [
        "1g.csv:6: Date: '2011-02-30 10:11:12' is not a valid yyyy-MM-dd date"
    ]


def test_bad_rows_are_rejected_with_file_line_and_field_and_the_rest_still_parse() -> None:
    source = "ORG_600977_Utility Account_Completed_20240507070000.csv"
    rows = [
        CHARGE,
        PAYMENT.replace("06-05-2024 01:12:09", "31-02-2024 10:00:00", 1),  # line 8
        PAYMENT.replace(",500.00,", ",five hundred,"),  # line 9
        PAYMENT.replace("SE60A1B2C3", "", 1),  # line 10
        PAYMENT.replace("Completed", "Pending"),  # line 11
        PAYMENT.replace(",500.00,", ",500.005,"),  # line 12
        PAYMENT.replace("SE60A1B2C3", "SE60A1B2C9", 1),  # line 13: fine
    ]
    items = run(statement(*rows).encode(), source)
    assert [str(r) for r in rejects(items)] == [
        f"{source}:8: Completion Time: '31-02-2024 10:00:00' is not a valid dd-MM-yyyy date",
        f"{source}:9: Paid In: 'five hundred' is not a number",
        f"{source}:10: Receipt No.: is empty",
        f"{source}:11: Transaction Status: 'Pending' is not Completed, Failed or Reversed",
        f"{source}:12: Paid In: 500.005 has more decimal places than KES allows (2)",
    ]
    bad_date = rejects(items)[0]
    assert (bad_date.source, bad_date.line, bad_date.field) == (source, 8, "Completion Time")
    assert bad_date.raw == rows[1].encode()
    assert [(o.line, o.transaction.receipt) for o in observations(items)] == [
        (7, "SE60A1B2C3"),
        (13, "SE60A1B2C9"),
    ]


def test_not_a_statement_is_one_reject() -> None:
    items = run(b"hello,world\r\n1,2\r\n", "notes.csv")
    assert len(items) == 1
    assert isinstance(items[0], Reject)
    assert "not an M-Pesa statement" in items[0].reason
    assert [str(r) for r in run(b"\xd0\xcf\x11\xe0rest", "old.xls")] == [
        "old.xls: an Excel 97-2003 (.xls) workbook; save it as .xlsx or CSV"
    ]
    assert "not a readable XLSX" in str(run(b"PK\x03\x04garbage", "x.xlsx")[0])


def test_entry_rules_reversal_settlement_and_account_reference_words() -> None:
    rows = [
        # the payer typed "Charges" as account: still a payment
        PAYMENT.replace("Acc. 00451", "Acc. Charges").replace(",00451", ",Charges"),
        # a reversal without Linked Transaction ID names its original in Details
        "SE65R6S7T8,06-05-2024 16:20:33,06-05-2024 16:20:33,Pay Bill Reversal of SE64N4P5Q6 to "
        '25479****004 - KEVIN,Completed,,"-1,500.00",100.00,true,Pay Utility Reversal,'
        "25479****004 - KEVIN,,",
        "SE63K1L2M3,06-05-2024 12:30:00,06-05-2024 12:30:00,Utility Account to Organization "
        'Settlement,Completed,,"-20,000.00",1.00,true,Settlement,,,',
        "SE63K1L2M4,06-05-2024 12:30:00,06-05-2024 12:30:00,Business Payment to 254700000001 - "
        "AMOS,Completed,,-50.00,1.00,true,Business Payment,254700000001 - AMOS,,",
    ]
    got = {
        o.transaction.receipt: o.transaction for o in observations(run(statement(*rows).encode()))
    }
    assert got["SE60A1B2C3"].entry is Entry.PAYMENT
    assert got["SE60A1B2C3"].reference == "Charges"
    reversal = got["SE65R6S7T8"]
    assert (reversal.entry, reversal.direction, reversal.related_receipt, reversal.reference) == (
        Entry.REVERSAL,
        Direction.DEBIT,
        "SE64N4P5Q6",
        None,
    )
    assert got["SE63K1L2M3"].entry is Entry.SETTLEMENT
    assert got["SE63K1L2M3"].counterparty is None
    payout = got["SE63K1L2M4"]
    assert (payout.entry, payout.direction) == (Entry.PAYOUT, Direction.DEBIT)


def test_currency_column_and_unknown_currency() -> None:
    header = HEADER_13 + ",Currency"
    rows = [PAYMENT + ",TZS", CHARGE + ",XYZ"]
    items = run(statement(*rows, header=header).encode())
    assert only(items).currency == "TZS"
    assert [r.field for r in rejects(items)] == ["Currency"]


# --- properties -------------------------------------------------------------------------

moments = st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31))
cents = st.integers(min_value=0, max_value=10**13)


@settings(max_examples=150, deadline=None)
@given(moment=moments, paid=cents, balance=st.integers(-(10**13), 10**13), excel=st.booleans())
def test_random_valid_rows_round_trip_amounts_and_times(
    moment: datetime, paid: int, balance: int, excel: bool
) -> None:
    moment = moment.replace(microsecond=0)
    amount, bal = Decimal(paid).scaleb(-2), Decimal(balance).scaleb(-2)
    if excel:
        when, paid_text, balance_text = moment.strftime("%d/%m/%Y %H:%M:%S"), str(amount), str(bal)
    else:
        when = moment.strftime("%d-%m-%Y %H:%M:%S")
        paid_text, balance_text = f'"{amount:,.2f}"', f'"{bal:,.2f}"'
    row = (
        f"SE1,{when},{when},Pay Bill from 2547 - A Acc. 1,Completed,{paid_text},,{balance_text},"
        "true,Pay Utility,2547 - A,,1"
    )
    txn = only(run(statement(row).encode()))
    assert txn.amount == amount
    assert str(txn.amount) == f"{amount:.2f}"
    assert txn.balance_after == bal
    assert txn.occurred_at == moment.replace(tzinfo=UTC) - (
        datetime(1, 1, 1, 3) - datetime(1, 1, 1)
    )


@settings(max_examples=150, deadline=None)
@given(
    amount=st.decimals(min_value=0, max_value=10**12, places=3, allow_nan=False),
    balance=st.one_of(st.none(), st.decimals(min_value=-(10**9), max_value=10**9, places=2)),
    currency=st.sampled_from(["KES", "UGX", "BHD"]),
    reference=st.one_of(st.none(), st.text(max_size=5)),
)
def test_fast_constructor_matches_the_validating_one(
    amount: Decimal, balance: Decimal | None, currency: str, reference: str | None
) -> None:
    args: tuple[Any, ...] = (
        *("mpesa", "600977", "SE1", Entry.PAYMENT, Direction.CREDIT, amount, currency),
        *(datetime(2024, 5, 6, tzinfo=UTC), None, reference, balance),
    )
    try:
        slow = Transaction(*args)
    except ValueError as exc:
        error = str(exc)
    else:
        fast = Transaction.fast(*args)
        assert fast == slow
        assert fast.to_dict() == slow.to_dict()
        assert fast.amount.as_tuple() == slow.amount.as_tuple()
        return
    with pytest.raises(ValueError) as caught:
        Transaction.fast(*args)
    assert str(caught.value) == error


def test_value_longer_than_the_ledger_keeps_is_rejected_by_column() -> None:
    too_long = PAYMENT.rsplit(",", 1)[0] + "," + "X" * 250
    items = run(statement(CHARGE, too_long).encode())
    (reject,) = rejects(items)
    assert (reject.line, reject.field) == (8, "A/C No.")  # 5 preamble lines, header, charge
    assert reject.reason == "is 250 characters; at most 200 are kept"
    assert len(observations(items)) == 1  # the charge row still comes out
