"""What pages show: redacted payloads, masked numbers, spreadsheet-safe CSV cells."""

from __future__ import annotations

from pesabridge.dashboard.present import csv_cell, mask_numbers, pretty_payload


def test_json_payloads_are_pretty_printed_with_secrets_redacted() -> None:
    raw = b'{"TransID": "SLK1", "nested": {"client_secret": "abc", "api-key": "k"}, "x": [1]}'
    text = pretty_payload(raw, unmasked=True)
    assert '"client_secret": "[redacted]"' in text
    assert '"api-key": "[redacted]"' in text
    assert "abc" not in text
    assert '\n  "TransID": "SLK1"' in text


def test_form_bodies_are_redacted_by_key_and_numbers_masked() -> None:
    raw = b"msisdn=254712345678&password=hunter22&amount=1500.00"
    text = pretty_payload(raw, unmasked=False)
    assert "hunter22" not in text
    assert "2547****5678" in text
    assert "1500.00" in text


def test_masking_leaves_short_numbers_and_identifiers_alone() -> None:
    assert mask_numbers("+254712345678 paid 1500 for INV123456789012") == (
        "+2547****5678 paid 1500 for INV123456789012"
    )


def test_csv_cells_cannot_start_a_formula() -> None:
    assert [csv_cell(v) for v in ("=1+1", "+254", "-2", "@SUM(A1)", "\tx", "plain", None)] == [
        "'=1+1",
        "'+254",
        "'-2",
        "'@SUM(A1)",
        "'\tx",
        "plain",
        "",
    ]
