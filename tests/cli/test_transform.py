"""``pesabridge transform`` and ``pesabridge iso8583 decode`` as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import iso8583
from iso8583.specs import default_ascii

from tests.cli.test_commands import lines_as_json, pesabridge

STATEMENT = "mpesa-statement/ORG_600977_Utility Account_Completed_20240507070000.csv"
CODES = ["-o", "processing_codes.charge=170000", "-o", "processing_codes.settlement=400000"]


def canonical(samples_dir: Path) -> Path:
    return samples_dir / "expected" / f"{STATEMENT}.jsonl"


def test_iso8583_one_hex_message_per_line_each_with_its_own_stan(
    samples_dir: Path, tmp_path: Path
) -> None:
    result = pesabridge(
        "transform", "--to", "iso8583", *CODES, "-o", "acquirer_id=412345",
        str(canonical(samples_dir)), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 12
    decoded = []
    for line in lines:
        assert line == line.upper()
        message, _ = iso8583.decode(bytes.fromhex(line), default_ascii)
        decoded.append(message)
    assert [m["11"] for m in decoded] == [f"{n:06}" for n in range(1, 13)]
    # the reversal comes after the payment it reverses and quotes that payment's STAN
    [reversal] = [m for m in decoded if m["t"] == "0420"]
    [original] = [m for m in decoded if m["37"] == reversal["37"] and m["3"] == "000000"
                  and m["t"] == "0220"]  # fmt: skip
    assert int(original["11"]) < int(reversal["11"])
    assert reversal["90"][:10] == "0220" + original["11"]
    assert reversal["90"][10:20] == original["7"]


def test_unencodable_rows_are_reported_and_the_rest_written(
    samples_dir: Path, tmp_path: Path
) -> None:
    result = pesabridge("transform", "--to", "iso8583", str(canonical(samples_dir)), cwd=tmp_path)
    assert result.returncode == 1
    assert "field 3: no processing code for entry 'charge'" in result.stderr
    assert len(result.stdout.splitlines()) == 6  # five payments and the reversal


def test_any_parse_format_in(samples_dir: Path, tmp_path: Path) -> None:
    result = pesabridge(
        "transform", "--to", "json", "--from", "mpesa-statement", str(samples_dir / STATEMENT),
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    expected = lines_as_json(canonical(samples_dir).read_text())
    assert lines_as_json(result.stdout) == expected


def test_csv_and_out_file(samples_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    result = pesabridge(
        "transform", "--to", "csv", "-o", "columns=receipt,signed_amount", "--out", str(out),
        str(canonical(samples_dir)), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    rows = out.read_text().splitlines()
    assert rows[0] == "receipt,signed_amount"
    assert len(rows) == 13


def test_statements_with_opening_balance_when_entries_carry_none(tmp_path: Path) -> None:
    source = tmp_path / "k2.jsonl"
    source.write_text(
        json.dumps(
            {
                "provider": "kopokopo",
                "account": "512345",
                "receipt": "SE56P4TX8R",
                "entry": "payment",
                "direction": "credit",
                "amount": "2350.00",
                "currency": "KES",
                "occurred_at": "2024-05-06T11:05:10Z",
                "counterparty": None,
                "reference": None,
                "balance_after": None,
                "status": "completed",
                "related_receipt": None,
            }
        )
        + "\n"
    )
    template = "{{ statement.account }} {{ statement.period_start }} {{ statement.opening_balance }} {{ statement.closing_balance }}"  # noqa: E501
    result = pesabridge(
        "transform", "--to", "template", "--statements", "-o", f"template={template}",
        "--opening-balance", "100", str(source), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "512345 2024-05-06 100.00 2450.00\n"


def test_statement_balances_that_do_not_add_up(samples_dir: Path, tmp_path: Path) -> None:
    lines = canonical(samples_dir).read_text().splitlines()
    gappy = tmp_path / "gap.jsonl"
    gappy.write_text("\n".join(lines[:3] + lines[5:]) + "\n")
    result = pesabridge("transform", "--to", "csv", "--statements", str(gappy), cwd=tmp_path)
    assert result.returncode == 1
    assert "cannot build statements" in result.stderr
    assert "balance_after" in result.stderr


def test_usage_errors(samples_dir: Path, tmp_path: Path) -> None:
    source = str(canonical(samples_dir))
    unknown = pesabridge("transform", "--to", "xml", source, cwd=tmp_path)
    assert unknown.returncode == 2
    assert "unknown encoder 'xml'" in unknown.stderr
    bad = pesabridge("transform", "--to", "iso8583", "-o", "mti=0999", source, cwd=tmp_path)
    assert bad.returncode == 2
    assert "options: mti" in bad.stderr
    malformed = pesabridge("transform", "--to", "csv", "-o", "columns", source, cwd=tmp_path)
    assert malformed.returncode == 2
    assert "key=value" in malformed.stderr


def test_iso8583_decode_file_and_hex(samples_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "messages.hex"
    encoded = pesabridge(
        "transform", "--to", "iso8583", "-o", "spec=1993", *CODES, "--out", str(out),
        str(canonical(samples_dir)), cwd=tmp_path,
    )  # fmt: skip
    assert encoded.returncode == 0, encoded.stderr
    result = pesabridge("iso8583", "decode", "--spec", "1993", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "message 12 of 12" in result.stdout
    assert "Action Code" in result.stdout
    assert "'IN*******0042'" in result.stdout  # field 102 INV-2024-0042, masked
    assert "INV-2024-0042" not in result.stdout
    first = out.read_text().splitlines()[0]
    single = pesabridge("iso8583", "decode", "--spec", "1993", first.lower(), cwd=tmp_path)
    assert single.returncode == 0, single.stderr
    assert "'1220'" in single.stdout
    wrong = pesabridge("iso8583", "decode", "--spec", "1987-binary", first, cwd=tmp_path)
    assert wrong.returncode == 1
    junk = pesabridge("iso8583", "decode", "not-hex", cwd=tmp_path)
    assert junk.returncode == 2
