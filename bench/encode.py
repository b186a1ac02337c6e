"""Encode benchmark: ISO 8583 messages/s through ``Iso8583Encoder`` against raw pyiso8583.

``make bench`` runs this after the ingest benchmark. In one process and one run:

* **ours** — ``Iso8583Encoder.encode(txn, context)`` for N transactions (mixed KES/UGX,
  payments and reversals, references of varied length): building the field map from the
  canonical transaction, checking every field, then pyiso8583 ``encode``;
* **raw** — pyiso8583 ``encode`` alone of the *same* field dicts (built by our encoder
  beforehand, copied so both start from identical input), with the same spec.

Both outputs are compared byte for byte. The two sides are interleaved in chunks of
``--chunk`` messages, each chunk timed ``--repeat`` times per side and the best kept, so
a load spike on a shared machine hits both alike. Goal: ours >= 0.8 x raw messages/s.

Then the **statements** section runs ``bench/encode_statements.py`` (camt.053 writing
and validation) when that file exists; ``--no-statements`` skips it.

Exit status: 0 PASS, 1 FAIL (goal missed), 2 wrong result (outputs differ).

    .venv/bin/python bench/encode.py
    .venv/bin/python bench/encode.py --messages 50000 --spec 1993 --json --no-statements
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import iso8583

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "src"))

from revision import commit_id  # noqa: E402

from pesabridge.encoders.base import MessageContext  # noqa: E402
from pesabridge.encoders.iso8583 import Iso8583Encoder, OriginalMessage  # noqa: E402
from pesabridge.model import Counterparty, Direction, Entry, Transaction  # noqa: E402

GOAL = 0.8
START = datetime(2024, 5, 6, 6, 0, tzinfo=UTC)


def workload(count: int) -> list[tuple[Transaction, MessageContext, OriginalMessage | None]]:
    """Deterministic transactions and their contexts (one STAN each)."""
    now = datetime(2024, 5, 6, 18, 6, 0, tzinfo=UTC)
    items: list[tuple[Transaction, MessageContext, OriginalMessage | None]] = []
    for n in range(count):
        ugx = n % 5 == 0
        reversal = n % 50 == 49
        receipt = f"SE{n:08d}"
        txn = Transaction.fast(
            "mpesa",
            f"60{n % 97:04d}",
            receipt,
            Entry.REVERSAL if reversal else Entry.PAYMENT,
            Direction.DEBIT if reversal else Direction.CREDIT,
            Decimal(1000 + n % 90_000) if ugx else Decimal(n % 1_000_000).scaleb(-2),
            "UGX" if ugx else "KES",
            START + timedelta(seconds=n),
            Counterparty(msisdn="254712345678", name="JANE DOE"),
            None if n % 7 == 0 else f"INV-{n % 100_000}",
            None,
            related_receipt=f"SE{n - 1:08d}" if reversal else None,
        )
        context = MessageContext(stan=n % 999_999 + 1, now=now, sink="bench")
        original = OriginalMessage("0220", (n - 1) % 999_999 + 1, now) if reversal else None
        items.append((txn, context, original))
    return items


def run_ours(encoder: Iso8583Encoder, items: list[Any]) -> tuple[float, list[bytes]]:
    encode = encoder.encode
    out: list[bytes] = []
    append = out.append
    started = time.perf_counter()
    for txn, context, original in items:
        append(encode(txn, context, original))
    return time.perf_counter() - started, out


def run_raw(spec: dict[str, Any], docs: list[dict[str, str]]) -> tuple[float, list[bytes]]:
    copies = [dict(doc) for doc in docs]  # pyiso8583 adds the bitmaps to its input
    encode = iso8583.encode
    out: list[bytes] = []
    append = out.append
    started = time.perf_counter()
    for doc in copies:
        raw, _ = encode(doc, spec)
        append(raw)
    elapsed = time.perf_counter() - started
    return elapsed, [bytes(raw) for raw in out]


def iso8583_section(messages: int, repeat: int, spec_name: str, chunk: int) -> dict[str, Any]:
    """Ours and raw, interleaved chunk by chunk (so a load spike on a shared machine hits
    both sides alike); each chunk timed ``repeat`` times per side, the best kept."""
    encoder = Iso8583Encoder(spec=spec_name, acquirer_id="412345")
    items = workload(messages)
    docs = [encoder.message(t, c, o) for t, c, o in items]
    ours_total = raw_total = 0.0
    wrong = False
    for start in range(0, messages, chunk):
        part, part_docs = items[start : start + chunk], docs[start : start + chunk]
        ours_best = raw_best = float("inf")
        for _ in range(repeat):
            ours_elapsed, ours_out = run_ours(encoder, part)
            raw_elapsed, raw_out = run_raw(encoder.spec.fields, part_docs)
            ours_best = min(ours_best, ours_elapsed)
            raw_best = min(raw_best, raw_elapsed)
            wrong = wrong or ours_out != raw_out
        ours_total += ours_best
        raw_total += raw_best
    ours_rate = messages / ours_total
    raw_rate = messages / raw_total
    return {
        "spec": spec_name,
        "messages": messages,
        "repeat": repeat,
        "chunk": chunk,
        "ours_msgs_per_s": round(ours_rate),
        "raw_msgs_per_s": round(raw_rate),
        "ratio": round(ours_rate / raw_rate, 3),
        "goal": GOAL,
        "identical_output": not wrong,
    }


def statements(argv: list[str]) -> int | None:
    """The statement encoders' benchmark (bench/encode_statements.py), when it exists."""
    path = HERE / "encode_statements.py"
    if not path.exists():
        print("statements: bench/encode_statements.py not present; skipped")
        return None
    # A fresh interpreter: its children fork from it, and peak RSS must not include the
    # ISO 8583 half's memory.
    return subprocess.run([sys.executable, str(path), *argv], check=False).returncode


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=5_000)
    parser.add_argument("--spec", default="1987-ascii")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--no-statements", action="store_true")
    parser.add_argument(
        "--statements-args", default="", help="arguments for bench/encode_statements.py"
    )
    args = parser.parse_args(argv)
    result = iso8583_section(args.messages, args.repeat, args.spec, args.chunk)
    result["commit"] = commit_id()
    result["python"] = platform.python_version()
    result["pyiso8583"] = getattr(iso8583, "__version__", "?")
    passed = result["ratio"] >= GOAL
    result["result"] = "WRONG" if not result["identical_output"] else ("PASS" if passed else "FAIL")
    if args.json:
        print(json.dumps(result))
    else:
        print(
            f"iso8583 {result['spec']}: {result['messages']:,} messages in chunks of "
            f"{result['chunk']:,}, best of {result['repeat']} per chunk and side\n"
            f"  ours (Iso8583Encoder.encode)  {result['ours_msgs_per_s']:>10,} msg/s\n"
            f"  raw  (pyiso8583 encode)       {result['raw_msgs_per_s']:>10,} msg/s\n"
            f"  ratio {result['ratio']:.3f} (goal >= {GOAL})  output identical: "
            f"{result['identical_output']}  -> {result['result']}\n"
            f"  commit {result['commit']}  python {result['python']}  "
            f"pyiso8583 {result['pyiso8583']}"
        )
    status = 2 if result["result"] == "WRONG" else (0 if passed else 1)
    if not args.no_statements:
        sub = statements(args.statements_args.split())
        if sub:
            status = max(status, sub)
    return status


if __name__ == "__main__":
    sys.exit(main())
