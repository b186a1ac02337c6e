"""Statement encoding benchmark: a camt.053 of 100,000 entries, written and validated.

Each phase runs in its own child interpreter, which builds the same statement (50,000
M-Pesa payments and their 50,000 charge rows, one account, one day) and reports its own
peak RSS (``ru_maxrss``) — both after building the entries (the input's own cost) and at
the end:

* **write+validate** — ``Camt053Encoder().encode_statement_to(path)``, the production
  path: entries streamed through ``lxml.etree.xmlfile``, then the file re-read and
  validated against the official XSD by libxml2 while parsing, entry by entry;
* **write** — the streamed writing alone;
* **validate (lxml)** — the streaming validation alone, of the file written above;
* **validate (xmlschema)** — ``xmlschema`` ``iter_errors`` over a lazy resource (depth 3, so
  entries are pruned; the pure-Python validator the tests use), for comparison;
  ``--no-xmlschema`` skips it.

    .venv/bin/python bench/encode_statements.py                 # 100,000 entries, .02
    .venv/bin/python bench/encode_statements.py --entries 20000 --version 08 --json
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PHASES = ("write+validate", "write", "validate-lxml", "validate-xmlschema")


def _rss_mb() -> float:
    # ru_maxrss is KiB on Linux, bytes on macOS
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def build_statement(entries: int) -> Any:
    from pesabridge.encoders.base import Statement
    from pesabridge.model import Counterparty, Direction, Entry, Transaction

    start = datetime(2024, 5, 5, 21, 0, 30, tzinfo=UTC)  # 2024-05-06 00:00:30 EAT
    step = timedelta(seconds=86_000 / max(entries // 2, 1))
    rows: list[Transaction] = []
    balance = Decimal("12500.00")
    for i in range(entries // 2):
        when = start + step * i
        amount = Decimal(100 + i % 9_000) + Decimal("0.50")
        charge = Decimal("1.25") + Decimal(i % 40)
        balance += amount
        receipt = f"SE{i:08d}"
        rows.append(
            Transaction.fast(
                "mpesa",
                "600977",
                receipt,
                Entry.PAYMENT,
                Direction.CREDIT,
                amount,
                "KES",
                when,
                Counterparty(msisdn="25471****234", name="GRACE WANJIRU"),
                f"INV-{i:07d}",
                balance,
            )
        )
        balance -= charge
        rows.append(
            Transaction.fast(
                "mpesa",
                "600977",
                receipt,
                Entry.CHARGE,
                Direction.DEBIT,
                charge,
                "KES",
                when,
                None,
                None,
                balance,
                related_receipt=receipt,
            )
        )
    return Statement(
        account="600977",
        currency="KES",
        period_start=date(2024, 5, 6),
        period_end=date(2024, 5, 6),
        opening_balance=Decimal("12500.00"),
        entries=rows,
        holder="Fictional Water Services Ltd",
        created_at=datetime(2024, 5, 7, 4, 0, tzinfo=UTC),
    )


def child(phase: str, entries: int, version: str, path: Path) -> dict[str, Any]:
    from pesabridge.encoders import _iso20022 as iso
    from pesabridge.encoders.camt import Camt053Encoder

    result: dict[str, Any] = {"phase": phase, "entries": entries, "version": version}
    statement = build_statement(entries) if phase in ("write+validate", "write") else None
    result["rss_after_input_mb"] = round(_rss_mb(), 1)
    encoder = Camt053Encoder(version=version)
    began = time.perf_counter()
    if phase == "write+validate":
        encoder.encode_statement_to(statement, path)
    elif phase == "write":
        with path.open("wb") as handle:
            encoder.write_statement(statement, handle)
    elif phase == "validate-lxml":
        iso.validate(path, "camt.053", version)
    elif phase == "validate-xmlschema":
        import xmlschema

        schema = xmlschema.XMLSchema(iso.schema_path("camt.053", version))
        resource_ = xmlschema.XMLResource(str(path), lazy=3)
        errors = [str(e) for _, e in zip(range(3), schema.iter_errors(resource_), strict=False)]
        if errors:
            raise SystemExit(f"xmlschema found errors: {errors}")
    result["seconds"] = round(time.perf_counter() - began, 2)
    result["peak_rss_mb"] = round(_rss_mb(), 1)
    result["file_mb"] = round(path.stat().st_size / 1e6, 1)
    return result


def _commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
        )
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "src", "bench"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip() + ("+dirty" if dirty else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--version", choices=("02", "08"), default="02")
    parser.add_argument("--workdir", type=Path, default=HERE / "out")
    parser.add_argument("--no-xmlschema", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--child", choices=PHASES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    path = args.workdir / f"camt053-{args.version}-{args.entries}.xml"
    if args.child:
        print(json.dumps(child(args.child, args.entries, args.version, path)))
        return 0
    phases = [p for p in PHASES if not (args.no_xmlschema and p == "validate-xmlschema")]
    results = []
    for phase in phases:
        proc = subprocess.run(
            [
                sys.executable,
                __file__,
                "--child",
                phase,
                "--entries",
                str(args.entries),
                "--version",
                args.version,
                "--workdir",
                str(args.workdir),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            print(proc.stderr, file=sys.stderr)
            return 2
        results.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    commit = _commit()
    print(
        f"camt.053.001.{args.version}, {args.entries:,} entries; commit {commit}; "
        f"Python {platform.python_version()} on {platform.machine()}"
    )
    for r in results:
        print(
            f"  {r['phase']:<20} {r['seconds']:>7.2f} s   peak RSS {r['peak_rss_mb']:>7.1f} MB"
            f"   (after input {r['rss_after_input_mb']:.1f} MB)   file {r['file_mb']} MB"
        )
    if args.json:
        print(json.dumps({"commit": commit, "results": results}))
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    raise SystemExit(main())
