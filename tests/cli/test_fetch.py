"""``pesabridge fetch`` and ``pesabridge files`` as a user runs them, against a real FTP server."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import yaml

from pesabridge.devtools.statements import write_statement

from ..fixtures.servers import PASSWORD, FileServer

STATEMENT = "mpesa-statement/ORG_600977_Utility Account_Completed_20240507070000.csv"

# Runs the CLI in-process and reports the process's peak RSS (KiB) on stderr.
_PEAK = """
import resource, sys
from pesabridge.cli import app
try:
    app(sys.argv[1:], prog_name="pesabridge")
except SystemExit as exc:
    code = exc.code
print("PEAK_KB", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)
sys.exit(code)
"""


def run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _PEAK, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "250", "FTP_PASSWORD": PASSWORD},
        check=False,
    )


def write_config(tmp_path: Path, server: FileServer, **options: object) -> Path:
    section = server.source("provider", password="${FTP_PASSWORD}", stable_for=0, **options)
    config = {"database": f"sqlite:///{tmp_path / 'ledger.db'}", "sources": [section]}
    path = tmp_path / "pesabridge.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_fetch_dry_run_then_fetch_then_files(
    ftp_server: FileServer, samples_dir: Path, tmp_path: Path
) -> None:
    (ftp_server.root / "statement.csv").write_bytes((samples_dir / STATEMENT).read_bytes())
    (ftp_server.root / "junk.csv").write_text("not,a,statement\n")
    config = write_config(tmp_path, ftp_server)

    dry = run("fetch", "provider", "-c", str(config), "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert "statement.csv" in dry.stdout
    assert "take (size and mtime stable)" in dry.stdout
    assert ftp_server.knobs.logins == 1

    fetched = run("fetch", "provider", "-c", str(config), cwd=tmp_path)
    assert fetched.returncode == 1, fetched.stderr  # one file failed
    assert "statement.csv" in fetched.stdout
    assert "no known format" in fetched.stdout

    again = run("fetch", "provider", "-c", str(config), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "nothing to take" in again.stdout

    listed = run("files", "-c", str(config), cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    lines = [line for line in listed.stdout.splitlines() if "provider" in line]
    assert len(lines) == 2
    assert any("done" in line and " 12 " in line for line in lines)
    assert any("failed" in line and "no known format" in line for line in lines)

    status = run("status", "-c", str(config), cwd=tmp_path)
    assert "provider" in status.stdout


def test_wrong_password_is_a_clear_configuration_error(
    ftp_server: FileServer, tmp_path: Path
) -> None:
    config = write_config(tmp_path, ftp_server)
    config.write_text(config.read_text().replace("${FTP_PASSWORD}", "wrong"))
    result = run("fetch", "provider", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 2
    assert "configuration error" in result.stderr
    assert "login refused" in result.stderr
    assert "wrong" not in result.stderr  # the password is never printed
    status = run("status", "-c", str(config), cwd=tmp_path)
    assert "login refused" in status.stdout


def test_a_200000_row_file_streams_in_bounded_memory(
    ftp_server: FileServer, tmp_path: Path
) -> None:
    big = ftp_server.root / "statement-200k.csv"
    assert write_statement(big, 100_000, end=datetime(2024, 5, 7, 7, 0), seed=5) == 200_000
    assert big.stat().st_size > 30_000_000
    config = write_config(tmp_path, ftp_server)
    result = run("fetch", "provider", "-c", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "200000" in result.stdout
    peak_mb = int(result.stderr.split("PEAK_KB")[-1].split()[0]) / 1024
    # The whole file as Python objects would be several hundred MB; streamed, the peak
    # is the interpreter, the libraries and one batch.
    assert peak_mb < 200, f"peak RSS {peak_mb:.0f} MB"
