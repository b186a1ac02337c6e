"""The delimited format: any CSV-like export read through a column mapping in the config."""

from __future__ import annotations

import gc
import tracemalloc
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from pesabridge.errors import ConfigError, UnknownFormat
from pesabridge.formats import Observation, ParseItem, Reject, StatementHeader, get_parser
from pesabridge.formats.delimited import DelimitedParser
from pesabridge.formats.registry import FormatOptionsError, detect_format
from pesabridge.model import Counterparty, Direction, Entry, Status, Transaction
from pesabridge.pipeline import choose_parser, ingest_file
from pesabridge.store import Store

BANK: dict[str, Any] = {
    "provider": "equity",
    "account": "0170299999999",
    "currency": "KES",
    "header_contains": "Transaction ID",
    "skip_footer_prefixes": ["Total", "Closing"],
    "time_format": "%d/%m/%Y %H:%M",
    "timezone": "Africa/Nairobi",
    "columns": {
        "receipt": "Transaction ID",
        "time": "Value Date",
        "credit": "Credit",
        "debit": "Debit",
        "reference": "Narrative",
        "balance": "Running Balance",
    },
}
BANK_FILE = (
    "Equity Bank Statement\r\n"
    "Account:,0170299999999\r\n"
    "Period:,01/05/2024 - 06/05/2024\r\n"
    "\r\n"
    "Transaction ID,Value Date,Narrative,Debit,Credit,Running Balance\r\n"
    'FT2405061,06/05/2024 01:12,INV-0042 school fees,,"25,000.00","125,000.00"\r\n'
    "FT2405062,06/05/2024 14:30,Supplier payout,1500.5,,123499.50\r\n"
    ",,,,,\r\n"
    'Total,,,"1,500.50","25,000.00",\r\n'
    "Closing balance,,,,,123499.50\r\n"
)

AIRTEL: dict[str, Any] = {
    "provider": "airtel",
    "account": "AIRTEL-UG-001",
    "currency": "UGX",
    "time_format": "%Y-%m-%d %H:%M:%S",
    "timezone": "Africa/Kampala",
    "status_values": {"TS": "completed", "TF": "failed", "TR": "reversed"},
    "columns": {
        "receipt": "Trans ID",
        "time": "Date",
        "amount": "Amount",
        "status": "Status",
        "msisdn": "MSISDN",
        "name": ["First Name", "Last Name"],
        "reference": "Reference",
    },
}
AIRTEL_FILE = (
    "Trans ID,Date,Amount,Status,MSISDN,First Name,Last Name,Reference\n"
    "MP210603.1234.L06941,2021-06-03 12:34:56,5000,TS,256700123456,JANE,NAKATO,INV-1\n"
    "MP210603.1235.L06942,2021-06-03 12:40:00,-140,TS,,,,\n"
    'MP210603.1236.L06943,2021-06-03 13:00:00,"1,000",TF,256700999888,PETER,,\n'
    "MP210603.1237.L06944,2021-06-03 13:05:00,700,XX,256700999888,PETER,,\n"
)


def parse(
    tmp_path: Path, content: str | bytes, options: dict[str, Any], name: str = "export.csv"
) -> list[ParseItem]:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    parser = get_parser("delimited", options)
    with path.open("rb") as stream:
        return list(parser.parse(stream, name))


def observations(items: list[ParseItem]) -> list[Observation]:
    return [i for i in items if isinstance(i, Observation)]


def transactions(items: list[ParseItem]) -> list[Transaction]:
    return [o.transaction for o in observations(items)]


def rejects(items: list[ParseItem]) -> list[Reject]:
    return [i for i in items if isinstance(i, Reject)]


def problems(options: Any, name: str = "delimited") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        get_parser(name, options)
    return caught.value.problems


# --- layouts -----------------------------------------------------------------------------


def test_bank_export_with_credit_debit_pair_preamble_and_footer(tmp_path: Path) -> None:
    items = parse(tmp_path, BANK_FILE, BANK)
    assert isinstance(items[0], StatementHeader)
    assert (items[0].provider, items[0].account, items[0].currency) == (
        "equity",
        "0170299999999",
        "KES",
    )
    assert rejects(items) == []
    first, second = observations(items)
    assert (first.line, second.line) == (6, 7)
    assert first.raw == b'FT2405061,06/05/2024 01:12,INV-0042 school fees,,"25,000.00","125,000.00"'
    assert first.transaction == Transaction(
        provider="equity",
        account="0170299999999",
        receipt="FT2405061",
        entry=Entry.PAYMENT,
        direction=Direction.CREDIT,
        amount=Decimal("25000.00"),
        currency="KES",
        # 01:12 in Nairobi (UTC+3) is the previous day in UTC
        occurred_at=datetime(2024, 5, 5, 22, 12, tzinfo=UTC),
        reference="INV-0042 school fees",
        balance_after=Decimal("125000.00"),
    )
    payout = second.transaction
    assert (payout.entry, payout.direction, payout.amount) == (
        Entry.PAYOUT,
        Direction.DEBIT,
        Decimal("1500.50"),
    )
    assert payout.occurred_at == datetime(2024, 5, 6, 11, 30, tzinfo=UTC)
    assert payout.counterparty is None


def test_airtel_export_with_signed_amount_and_status_mapping(tmp_path: Path) -> None:
    items = parse(tmp_path, AIRTEL_FILE, AIRTEL)
    payment, charge, failed = transactions(items)
    assert payment == Transaction(
        provider="airtel",
        account="AIRTEL-UG-001",
        receipt="MP210603.1234.L06941",
        entry=Entry.PAYMENT,
        direction=Direction.CREDIT,
        amount=Decimal("5000"),
        currency="UGX",
        occurred_at=datetime(2021, 6, 3, 9, 34, 56, tzinfo=UTC),
        counterparty=Counterparty("256700123456", None, "JANE NAKATO"),
        reference="INV-1",
    )
    assert (charge.direction, charge.entry, charge.amount) == (
        Direction.DEBIT,
        Entry.PAYOUT,
        Decimal("140"),
    )
    assert charge.counterparty is None
    assert (failed.status, failed.amount) == (Status.FAILED, Decimal("1000"))
    assert failed.counterparty == Counterparty("256700999888", None, "PETER")
    (bad,) = rejects(items)
    assert (bad.source, bad.line, bad.field) == ("export.csv", 5, "Status")
    assert bad.reason == "'XX' is not one of 'tf', 'tr', 'ts'"
    assert str(bad) == "export.csv:5: Status: 'XX' is not one of 'tf', 'tr', 'ts'"


def test_semicolon_decimal_comma_and_cp1252(tmp_path: Path) -> None:
    content = (
        "Référence;Date opération;Montant;Payeur\r\n"
        "CI2405.001;06/05/2024 08:00:00;1.250.000;Zoé Kouamé\r\n"
        "CI2405.002;06/05/2024 09:15:00;-2 500,50;Société Générale\r\n"
    ).encode("cp1252")
    options = {
        "provider": "mtn-momo",
        "currency": "EUR",
        "delimiter": ";",
        "decimal_separator": ",",
        "time_format": "%d/%m/%Y %H:%M:%S",
        "timezone": "UTC",
        "columns": {"receipt": "Référence", "time": "Date opération", "amount": "Montant"}
        | {"name": "Payeur"},
    }
    for encoding in ("auto", "cp1252"):
        items = parse(tmp_path, content, options | {"encoding": encoding})
        assert rejects(items) == []
        first, second = transactions(items)
        assert first.amount == Decimal("1250000.00")
        assert first.counterparty == Counterparty(None, None, "Zoé Kouamé")
        assert first.occurred_at == datetime(2024, 5, 6, 8, 0, tzinfo=UTC)
        assert (second.direction, second.amount) == (Direction.DEBIT, Decimal("2500.50"))
        assert second.counterparty == Counterparty(None, None, "Société Générale")


def test_utf8_with_bom_and_tab_delimiter(tmp_path: Path) -> None:
    content = "\ufeffReceipt\tTime\tAmount\tPhone\nSE1\t2024-05-06T10:00:00\t10\t+254711000222\n"
    options = {
        "provider": "mpesa",
        "currency": "KES",
        "delimiter": "tab",
        "columns": {"receipt": "receipt", "time": "TIME", "amount": " Amount ", "msisdn": "Phone"},
    }
    for encoding in ("auto", "utf-8"):
        (txn,) = transactions(
            parse(tmp_path, content.encode("utf-8"), options | {"encoding": encoding})
        )
        assert txn.occurred_at == datetime(2024, 5, 6, 7, 0, tzinfo=UTC)  # ISO, Nairobi
        assert txn.counterparty == Counterparty("+254711000222", None, None)


def test_strict_utf8_rejects_only_the_row_with_a_bad_byte(tmp_path: Path) -> None:
    content = (
        b"Receipt,Time,Amount,Name\nSE1,2024-05-06 10:00,10,Zo\xe9\nSE2,2024-05-06 10:01,20,Al\n"
    )
    options = {
        "provider": "mpesa",
        "currency": "KES",
        "encoding": "utf-8",
        "columns": {"receipt": "Receipt", "time": "Time", "amount": "Amount", "name": "Name"},
    }
    items = parse(tmp_path, content, options)
    (bad,) = rejects(items)
    assert (bad.line, bad.raw) == (2, b"SE1,2024-05-06 10:00,10,Zo\xe9")
    assert "byte 0xe9 is not valid UTF-8" in bad.reason
    assert [t.receipt for t in transactions(items)] == ["SE2"]
    # auto reads the same byte as cp1252
    items = parse(tmp_path, content, options | {"encoding": "auto"})
    assert transactions(items)[0].counterparty == Counterparty(None, None, "Zoé")


def test_header_line_and_headerless_files_by_index(tmp_path: Path) -> None:
    content = "Report X\nGenerated today\nID,When,Value\nA1,2024-05-06 10:00:00,5\n"
    options: dict[str, Any] = {
        "provider": "kopokopo",
        "currency": "KES",
        "header_line": 3,
        "columns": {"receipt": 0, "time": "When", "amount": 2},
    }
    (item,) = [i for i in parse(tmp_path, content, options) if not isinstance(i, StatementHeader)]
    assert isinstance(item, Observation)
    assert item.line == 4
    headerless = {**options, "header_line": None, "header": False, "skip_lines": 3}
    headerless["columns"] = {"receipt": 0, "time": 1, "amount": 2}
    (txn,) = transactions(parse(tmp_path, content, headerless))
    assert (txn.receipt, txn.amount) == ("A1", Decimal("5.00"))
    bad = parse(tmp_path, content + "A2,soon,5\n", headerless)
    assert [(r.line, r.field) for r in rejects(bad)] == [(5, "time (column 1)")]


def test_direction_entry_and_currency_columns(tmp_path: Path) -> None:
    content = (
        "Ref,At,Amt,DrCr,Kind,Ccy,Orig\n"
        "R1,2024-05-06 10:00:00,100.00,CR,,USD,\n"
        "R2,2024-05-06 10:00:00,2.50,DR,fee,,R1\n"
        "R3,2024-05-06 10:00:00,100.00,Debit,refund,,R1\n"
        "R4,2024-05-06 10:00:00,-5.00,CR,,,\n"
        "R5,2024-05-06 10:00:00,5.00,sideways,,,\n"
        "R6,2024-05-06 10:00:00,5.00,DR,bonus,,\n"
        "R7,2024-05-06 10:00:00,5.00,DR,,XXX,\n"
    )
    options = {
        "provider": "bank",
        "currency": "KES",
        "entry_values": {"fee": "charge", "refund": "reversal"},
        "columns": {
            "receipt": "Ref",
            "time": "At",
            "amount": "Amt",
            "direction": "DrCr",
            "entry": "Kind",
            "currency": "Ccy",
            "related_receipt": "Orig",
        },
    }
    items = parse(tmp_path, content, options)
    found = [
        (t.receipt, t.entry, t.direction, t.currency, t.related_receipt)
        for t in transactions(items)
    ]
    assert found == [
        ("R1", Entry.PAYMENT, Direction.CREDIT, "USD", None),
        ("R2", Entry.CHARGE, Direction.DEBIT, "KES", "R1"),
        ("R3", Entry.REVERSAL, Direction.DEBIT, "KES", "R1"),
    ]
    assert [(r.line, r.field, r.reason) for r in rejects(items)] == [
        (5, "Amt", "-5.00 is negative but DrCr says credit"),
        (
            6,
            "DrCr",
            "'sideways' is not one of "
            "'+', '-', 'c', 'cr', 'credit', 'd', 'debit', 'dr', 'in', 'out'",
        ),
        (7, "Kind", "'bonus' is not one of 'fee', 'refund'"),
        (8, "Ccy", "'XXX' is not a known ISO 4217 code"),
    ]


def test_fixed_entry_and_time_split_over_two_columns(tmp_path: Path) -> None:
    content = "Receipt,Date,Time,Amount\nS1,06/05/2024,23:59:59,10\n"
    options = {
        "provider": "bank",
        "currency": "KES",
        "entry": "settlement",
        "time_format": "%d/%m/%Y %H:%M:%S",
        "timezone": "+03:00",
        "columns": {"receipt": "Receipt", "time": ["Date", "Time"], "amount": "Amount"},
    }
    (txn,) = transactions(parse(tmp_path, content, options))
    assert txn.entry is Entry.SETTLEMENT
    assert txn.occurred_at == datetime(2024, 5, 6, 20, 59, 59, tzinfo=UTC)


# --- rejects -----------------------------------------------------------------------------


def test_bad_rows_rejected_with_line_and_column_and_the_rest_kept(tmp_path: Path) -> None:
    rows = [
        'FT1,06/05/2024 10:00,"two\r\nline narrative",,100.00,',  # lines 6-7, good
        "FT2,31/02/2024 10:00,x,,100.00,",
        "FT3,06/05/2024 10:00,x,,ten,",
        "FT4,06/05/2024 10:00,x,,1.005,",
        "FT5,06/05/2024 10:00,x,5.00,100.00,",
        "FT6,06/05/2024 10:00,x,,,",
        ",06/05/2024 10:00,x,,5.00,",
        "FT8,,x,,5.00,",
        "FT9,06/05/2024 10:00,x,,5.00,12.3.4",
        "FT10,06/05/2024 10:00,x,,-5.00,",
        "",
        ",,,,,",
        'FT11,06/05/2024 10:00,x,"(1,000.00)",,',
        "Transaction ID,Value Date,Narrative,Debit,Credit,Running Balance",
        "FT12,06/05/2024 10:00,x,,5.00,",
    ]
    content = "\r\n".join([*BANK_FILE.split("\r\n")[:5], *rows]) + "\r\n"
    items = parse(tmp_path, content, BANK)
    assert [(r.line, r.field, r.reason) for r in rejects(items)] == [
        (8, "Value Date", "'31/02/2024 10:00' is not a %d/%m/%Y %H:%M time"),
        (9, "Credit", "'ten' is not a number"),
        (10, "Credit", "1.005 has more decimal places than KES allows (2)"),
        (11, "Credit", "both Credit and Debit have an amount"),
        (12, "Credit", "neither Credit nor Debit has an amount"),
        (13, "Transaction ID", "is empty"),
        (14, "Value Date", "is empty"),
        (15, "Running Balance", "'12.3.4' is not a number"),
        (16, "Credit", "-5.00 is negative in a credit column"),
    ]
    assert rejects(items)[0].raw == b"FT2,31/02/2024 10:00,x,,100.00,"
    good = observations(items)
    assert [(o.line, o.transaction.receipt) for o in good] == [
        (6, "FT1"),
        (19, "FT11"),
        (21, "FT12"),
    ]
    assert good[0].transaction.reference == "two\r\nline narrative"
    assert good[1].transaction.amount == Decimal("1000.00")  # (1,000.00) in Debit


def test_missing_column_and_missing_header_are_one_reject_each(tmp_path: Path) -> None:
    content = (
        "Transaction ID,Value Date,Narrative,Paid In,Withdrawn\r\nFT1,06/05/2024 10:00,x,1,\r\n"
    )
    items = parse(tmp_path, content, BANK)
    assert [(r.line, r.field, r.reason) for r in rejects(items)] == [
        (1, "Credit", "no such column in the header row"),
        (1, "Debit", "no such column in the header row"),
        (1, "Running Balance", "no such column in the header row"),
    ]
    assert observations(items) == []
    items = parse(tmp_path, "just,some,text\r\n1,2,3\r\n", BANK)
    assert [(r.line, r.field, r.reason) for r in items if isinstance(r, Reject)] == [
        (None, None, "no row has a cell 'Transaction ID'; header not found")
    ]
    options = {**BANK, "header_contains": None, "header_line": 1}
    options["columns"] = {**BANK["columns"], "reference": 9}
    (bad,) = parse(
        tmp_path, BANK_FILE, options | {"header_contains": "Transaction ID", "header_line": None}
    )
    assert isinstance(bad, Reject)
    assert (bad.field, bad.reason) == ("column 9", "the header row has only 6 columns")


# --- options -----------------------------------------------------------------------------


def test_options_validation_names_every_problem_with_its_path() -> None:
    assert problems({"provider": "x", "currency": "KES", "columns": {"time": "T"}}) == [
        "format_options.columns.receipt: Field required"
    ]
    assert problems(
        {"provider": "x", "currency": "KES", "columns": {"receipt": "R", "time": "T"}}
    ) == ["format_options.columns: give amount (signed), or credit and debit"]
    found = problems(
        {
            "currency": "KSH",
            "account": 12345,
            "delimiter": ";;",
            "encoding": "latin-9",
            "time_format": "dd/MM/yyyy HH:mm",
            "timezone": "Africa/Nowhere",
            "colums": {},
            "columns": {"receipt": -1, "time": True, "credit": "C"},
        }
    )
    assert found == [
        "format_options.provider: Field required",
        'format_options.account: must be text; quote it in YAML so leading zeros survive ("0123")',
        "format_options.currency: 'KSH' is not a known ISO 4217 code",
        'format_options.delimiter: must be one character (",", ";", "|" or tab)',
        "format_options.encoding: Input should be 'auto', 'utf-8' or 'cp1252'",
        "format_options.time_format: 'dd/MM/yyyy HH:mm' is not a strptime pattern; "
        "did you mean '%d/%m/%Y %H:%M'?",
        "format_options.timezone: 'Africa/Nowhere' is not an IANA time zone (Africa/Nairobi) "
        "or an offset (+03:00)",
        "format_options.columns.receipt: -1 is negative; must be a column name or a "
        "0-based column index",
        "format_options.columns.time: must be a column name or a 0-based column index",
        "format_options.colums: Extra inputs are not permitted",
    ]
    headerless = {**BANK, "header_contains": None, "header": False}
    assert problems(headerless) == [
        "format_options: columns.receipt: 'Transaction ID' is a name but the file has no "
        "header row (header: false); give its 0-based index"
    ]
    assert problems({**BANK, "status_values": {"0": "completed"}}) == [
        "format_options: status_values: given without columns.status"
    ]
    assert problems({**BANK, "currency": None}) == [
        "format_options: currency: required (a code like KES, or columns.currency)"
    ]


def test_options_errors_are_config_errors_and_unknown_formats() -> None:
    with pytest.raises(FormatOptionsError) as caught:
        get_parser("delimited")
    assert isinstance(caught.value, ConfigError)
    assert isinstance(caught.value, UnknownFormat)
    assert "format_options.provider: Field required" in caught.value.problems
    assert problems({"delimiter": ";"}, "mpesa-statement") == [
        "format_options: format 'mpesa-statement' takes no options (given: delimiter)"
    ]
    with pytest.raises(ConfigError) as where:
        get_parser("delimited", {}, where="sources[2].format_options")
    assert where.value.problems[0] == "sources[2].format_options.provider: Field required"
    with pytest.raises(UnknownFormat):
        get_parser("no-such-format", BANK)


def test_each_configured_parser_is_its_own_instance_and_never_sniffed() -> None:
    one, two = get_parser("delimited", BANK), get_parser("delimited", AIRTEL)
    assert isinstance(one, DelimitedParser)
    assert isinstance(two, DelimitedParser)
    assert one is not two
    assert not one.sniff(BANK_FILE.encode(), "export.csv")
    assert detect_format(BANK_FILE.encode(), "export.csv") is None


def test_pipeline_passes_format_options_through(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "equity.csv"
    path.write_text(BANK_FILE)
    assert isinstance(choose_parser(path, "delimited", BANK), DelimitedParser)
    with pytest.raises(ConfigError):
        choose_parser(path, "auto", BANK)
    summary = ingest_file(
        store, path, fmt="delimited", format_options=BANK, route=lambda _t: [], source="test"
    )
    assert (summary.format, summary.new, summary.rejected, summary.error) == (
        "delimited",
        2,
        0,
        None,
    )
    broken = tmp_path / "other.csv"
    broken.write_text(BANK_FILE.replace("FT2405061", "FT2405069"))
    failed = ingest_file(store, broken, fmt="delimited", route=lambda _t: [])
    assert failed.error is not None
    assert "format_options.provider: Field required" in failed.error


# --- scale -------------------------------------------------------------------------------


def test_200000_rows_parsed_in_bounded_memory(tmp_path: Path) -> None:
    rows = 200_000
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(
            "Preamble line\r\nTransaction ID,Value Date,Narrative,Debit,Credit,Running Balance\r\n"
        )
        for i in range(rows):
            day, minute = 1 + i % 28, i % 1440
            amount = f'"{(i % 50_000) + 1:,}.{i % 100:02d}"'
            credit, debit = (amount, "") if i % 3 else ("", amount)
            out.write(
                f"FT{i:08d},{day:02d}/05/2024 {minute // 60:02d}:{minute % 60:02d},"
                f"Ref {i % 977} acct {i},{debit},{credit},\r\n"
            )
        out.write('Total,,,"1.00","2.00",\r\n')
    size = path.stat().st_size
    parser = get_parser("delimited", BANK)
    gc.collect()
    tracemalloc.start()
    try:
        count = rejected = 0
        with path.open("rb") as stream:
            for item in parser.parse(stream, path.name):
                if isinstance(item, Observation):
                    count += 1
                elif isinstance(item, Reject):
                    rejected += 1
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (count, rejected) == (rows, 0)
    print(f"\n{rows} rows, {size / 1e6:.1f} MB file: parser peak {peak / 1e6:.2f} MB")
    assert peak < 20_000_000
    assert peak < size / 4  # far below the file: nothing accumulates per row
