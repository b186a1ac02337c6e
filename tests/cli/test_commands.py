"""The command line as a user runs it: real processes, real files, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pesabridge.formats import FailedAttempt
from pesabridge.store import Store, utcnow
from pesabridge.store.failures import add_failed_attempts

STATEMENT = "mpesa-statement/ORG_600977_Utility Account_Completed_20240507070000.csv"
PARSE_CASES = [
    ("mpesa-statement", STATEMENT),
    ("mpesa-statement", STATEMENT.replace(".csv", ".xlsx")),
    ("mpesa-statement", "mpesa-statement/ORG_600978_Utility Account_Completed_20240508063000.csv"),
    ("daraja-c2b", "daraja/c2b_confirmation_v1_hashed.json"),
    ("daraja-c2b", "daraja/c2b_confirmation_v2_masked.json"),
    ("daraja-c2b", "daraja/c2b_confirmation_legacy_plain.json"),
    ("daraja-c2b", "daraja/c2b_validation_request.json"),
    ("daraja-stk", "daraja/stk_callback_success.json"),
    ("daraja-stk", "daraja/stk_callback_failure.json"),
    ("daraja-result", "daraja/b2c_result.json"),
    ("daraja-result", "daraja/reversal_result.json"),
    ("kopokopo-webhook", "kopokopo/k2_buygoods_transaction_received.json"),
    ("kopokopo-webhook", "kopokopo/k2_buygoods_transaction_reversed.json"),
    ("kopokopo-legacy", "kopokopo/legacy_notification.form"),
    ("airtel-callback", "airtel/callback.json"),
    ("mtn-momo-callback", "mtn/momo_callback_successful.json"),
    ("mtn-momo-callback", "mtn/momo_callback_failed.json"),
]


def pesabridge(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pesabridge", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        check=False,
    )


def lines_as_json(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def key(obj: dict[str, object]) -> str:
    return json.dumps(obj, sort_keys=True)


@pytest.mark.parametrize(("fmt", "sample"), PARSE_CASES)
@pytest.mark.parametrize("auto", [False, True], ids=["named", "auto"])
def test_parse_prints_exactly_the_expected_transactions(
    samples_dir: Path, tmp_path: Path, fmt: str, sample: str, auto: bool
) -> None:
    result = pesabridge(
        "parse", "--format", "auto" if auto else fmt, str(samples_dir / sample), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    expected = lines_as_json((samples_dir / "expected" / f"{sample}.jsonl").read_text())
    assert sorted(map(key, lines_as_json(result.stdout))) == sorted(map(key, expected))


def test_parse_rejects_go_to_stderr_and_exit_1(samples_dir: Path, tmp_path: Path) -> None:
    lines = (samples_dir / STATEMENT).read_text(encoding="utf-8").splitlines()
    receipt, _, rest = lines[12].split(",", 2)
    lines[12] = f"{receipt},31-02-2024 10:00:00,{rest}"
    bad = tmp_path / "ORG_600977_bad.csv"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = pesabridge("parse", "--format", "mpesa-statement", str(bad), cwd=tmp_path)
    assert result.returncode == 1
    assert len(lines_as_json(result.stdout)) == 11  # the good rows are still printed
    (message,) = result.stderr.splitlines()
    assert message.startswith("ORG_600977_bad.csv:13: Completion Time: ")
    assert "31-02-2024 10:00:00" in message


def test_parse_usage_errors_exit_2(samples_dir: Path, tmp_path: Path) -> None:
    assert (
        pesabridge(
            "parse", "--format", "nope", str(samples_dir / STATEMENT), cwd=tmp_path
        ).returncode
        == 2
    )
    assert pesabridge("parse", str(tmp_path / "missing.csv"), cwd=tmp_path).returncode == 2
    assert pesabridge("parse", cwd=tmp_path).returncode == 2


def test_ingest_status_deliveries_replay_on_the_default_ledger(
    samples_dir: Path, tmp_path: Path
) -> None:
    first = pesabridge("ingest", str(samples_dir / STATEMENT), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert (tmp_path / "pesabridge.db").exists()  # the embedded default, in the cwd
    row = next(line for line in first.stdout.splitlines() if "ORG_600977" in line)
    cells = [cell.strip() for cell in row.split("│")[1:-1]]
    # file, format, rows read, new, already known, conflicting, rejected, note
    assert cells[1:] == ["mpesa-statement", "12", "12", "0", "0", "0", ""]
    again = pesabridge("ingest", str(samples_dir / STATEMENT), cwd=tmp_path)
    assert "already ingested (same content)" in again.stdout
    status = pesabridge("status", "--json", cwd=tmp_path)
    counts = json.loads(status.stdout)
    assert counts["transactions"] == 12
    assert counts["files"] == {"done": 1}
    assert counts["deliveries"] == {}  # no config: recorded, routed nowhere


def test_ingest_with_a_config_routes_to_its_sinks(samples_dir: Path, tmp_path: Path) -> None:
    config = tmp_path / "pesabridge.yaml"
    config.write_text(
        "database: sqlite:///ledger.db\n"
        "sources: [{name: portal, type: folder, path: inbox}]\n"
        "sinks: [{name: erp, type: http, url: 'http://127.0.0.1:9/payments'}]\n"
        "routes: [{from: [portal], to: [erp], entries: [payment]}]\n"
    )
    result = pesabridge("ingest", "-c", str(config), str(samples_dir / STATEMENT), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    counts = json.loads(pesabridge("status", "--json", "-c", str(config), cwd=tmp_path).stdout)
    assert counts["deliveries"] == {"erp": {"pending": 5}}
    listing = pesabridge("deliveries", "-c", str(config), cwd=tmp_path)
    assert listing.stdout.count("pending") == 5
    assert "254" not in listing.stdout.replace("2547", "")  # numbers shown masked
    nothing = pesabridge("replay", "--dead", "-c", str(config), cwd=tmp_path)
    assert "0 deliveries queued again" in nothing.stdout
    assert pesabridge("replay", "-c", str(config), cwd=tmp_path).returncode == 2


def test_demo_once_delivers_everything_exactly_once(tmp_path: Path) -> None:
    result = pesabridge(
        "demo",
        "--once",
        "--port",
        "0",
        "--workdir",
        str(tmp_path / "demo"),
        cwd=tmp_path,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "everything delivered exactly once" in result.stdout
    assert "yes" in result.stdout


def test_parse_delimited_with_format_options(tmp_path: Path) -> None:
    export = tmp_path / "airtel.csv"
    export.write_text(
        "Trans ID,Date,Amount,Status,MSISDN,Reference\n"
        "MP240506.1,2024-05-06 10:00:00,5000,TS,256700000001,INV-1\n"
        "MP240506.2,2024-05-06 10:05:00,-1500,TS,256700000002,\n"
    )
    options = tmp_path / "airtel.yaml"
    options.write_text(
        "provider: airtel\ncurrency: UGX\ntimezone: Africa/Kampala\n"
        "time_format: '%Y-%m-%d %H:%M:%S'\nstatus_values: {TS: completed}\n"
        "columns: {receipt: Trans ID, time: Date, amount: Amount, status: Status,"
        " msisdn: MSISDN, reference: Reference}\n"
    )
    result = pesabridge(
        "parse",
        "--format",
        "delimited",
        "--format-options",
        str(options),
        str(export),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    first, second = lines_as_json(result.stdout)
    assert (first["amount"], first["currency"], first["direction"]) == ("5000", "UGX", "credit")
    assert first["occurred_at"] == "2024-05-06T07:00:00Z"
    assert (second["amount"], second["direction"]) == ("1500", "debit")
    missing = pesabridge(
        "parse",
        "--format",
        "delimited",
        "--format-options",
        "{provider: airtel}",
        str(export),
        cwd=tmp_path,
    )
    assert missing.returncode == 2
    assert "format_options.columns" in missing.stderr


def test_failed_attempts_are_listed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    store = Store.open(url)
    cancelled = FailedAttempt(
        source="stk:req-1",
        provider="mpesa",
        request_id="ws_CO_191220191020363925",
        code="1032",
        reason="Request cancelled by user",
        raw=b"{}",
    )
    with store.write() as conn:
        add_failed_attempts(conn, [cancelled], source="stk", account="174379", now=utcnow())
    store.close()
    result = pesabridge("failed-attempts", "--db", url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ws_CO_191220191020363925" in result.stdout
    assert "Request cancelled by user" in result.stdout
    assert "1032" in result.stdout
