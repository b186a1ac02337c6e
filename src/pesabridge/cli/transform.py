"""``pesabridge transform``: canonical transactions into a back office's format, and
``pesabridge iso8583 decode``: an ISO 8583 message field by field."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from ..encoders.base import EncodeError, MessageContext
from ..encoders.registry import encoder_names, get_encoder
from ..encoders.statements import DEFAULT_ZONE, build_statements
from ..errors import ConfigError, UnknownFormat
from ..formats import Observation, Reject, format_names
from ..model import Entry, Transaction
from ..pipeline import choose_parser
from .common import console, errors

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

iso8583_app = typer.Typer(
    name="iso8583", help="ISO 8583 tools.", no_args_is_help=True, add_completion=False
)


def parse_options(pairs: list[str]) -> dict[str, Any]:
    """``key=value`` pairs as encoder options; ``a.b=v`` nests (``{"a": {"b": "v"}}``).

    Values stay strings (each encoder's options model converts them), so ``mti=0200``
    is never read as a number.
    """
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--option {pair!r}: expected key=value")
        *parents, leaf = key.split(".")
        target = options
        for part in parents:
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                raise ValueError(f"--option {pair!r}: {part} is already a value")
            target = child
        target[leaf] = None if value == "null" else value
    return options


def _read(files: list[Path], fmt: str) -> tuple[list[Transaction], int]:
    transactions: list[Transaction] = []
    rejected = 0
    for path in files:
        if not path.is_file():
            errors.print(f"{path}: no such file", highlight=False)
            raise typer.Exit(2)
        try:
            parser = choose_parser(path, fmt)
        except UnknownFormat as exc:
            errors.print(str(exc), highlight=False)
            raise typer.Exit(2) from None
        with path.open("rb") as stream:
            for item in parser.parse(stream, path.name):
                if isinstance(item, Observation):
                    transactions.append(item.transaction)
                elif isinstance(item, Reject):
                    rejected += 1
                    print(str(item), file=sys.stderr)
    return transactions, rejected


def _encoder(name: str, options: dict[str, Any]) -> Any:
    try:
        return get_encoder(name, options)
    except ImportError as exc:
        errors.print(f"encoder {name!r} is not available in this installation: {exc}")
        raise typer.Exit(2) from None
    except ConfigError as exc:
        errors.print(f"[bold red]--option: not valid for the {name} encoder[/]")
        for line in exc.problems:
            errors.print(f"  {line}", markup=False, highlight=False)
        raise typer.Exit(2) from None
    except EncodeError as exc:
        errors.print(f"{name}: {exc}", markup=False, highlight=False)
        raise typer.Exit(2) from None


def _iso8583(encoder: Any, transactions: list[Transaction], out: IO[bytes], stan: int) -> int:
    """One hex line per message, in time order (a reversal after its original), STANs
    consecutive over the messages written; a reversal quotes its original's STAN and
    time when the original was encoded in this run."""
    from ..encoders.iso8583 import InMemoryStanAllocator, OriginalMessage

    allocator = InMemoryStanAllocator(stan)
    originals: dict[tuple[str, str | None, str], OriginalMessage] = {}
    failed = 0
    pending: int | None = None
    ordered = sorted(
        transactions,
        key=lambda t: (t.occurred_at is None, t.occurred_at or _EPOCH, t.entry is Entry.REVERSAL),
    )
    for txn in ordered:
        if pending is None:
            pending = allocator.allocate()
        context = MessageContext(stan=pending, sink="cli")
        original = None
        if txn.entry is Entry.REVERSAL and txn.related_receipt:
            original = originals.get((txn.provider, txn.account, txn.related_receipt))
        try:
            raw = encoder.encode(txn, context, original)
        except EncodeError as exc:
            failed += 1
            print(str(exc), file=sys.stderr)
            continue
        pending = None
        out.write(raw.hex().upper().encode() + b"\n")
        key = (txn.provider, txn.account, txn.receipt)
        if txn.entry is Entry.PAYMENT or (txn.entry is not Entry.REVERSAL and key not in originals):
            originals[key] = encoder.original_of(txn, context)
    return failed


def _messages(encoder: Any, transactions: list[Transaction], out: IO[bytes]) -> int:
    failed = 0
    for txn in transactions:
        try:
            body: bytes = encoder.encode(txn, MessageContext(sink="cli"))
        except EncodeError as exc:
            failed += 1
            print(str(exc), file=sys.stderr)
            continue
        out.write(body if body.endswith(b"\n") else body + b"\n")
    return failed


def _statements(
    encoder: Any, transactions: list[Transaction], out: IO[bytes], zone: str, opening: Decimal
) -> int:
    try:
        statements = build_statements(transactions, zone, opening)
    except EncodeError as exc:
        print(f"cannot build statements: {exc}", file=sys.stderr)
        return 1
    failed = 0
    for statement in statements:
        try:
            body: bytes = encoder.encode_statement(statement)
        except EncodeError as exc:
            failed += 1
            print(f"statement {statement.statement_id}: {exc}", file=sys.stderr)
            continue
        out.write(body if body.endswith(b"\n") else body + b"\n")
    return failed


def transform(
    files: Annotated[
        list[Path], typer.Argument(help="Input files (canonical JSON Lines by default).")
    ],
    to: Annotated[str, typer.Option("--to", help="Encoder: " + ", ".join(encoder_names()))],
    fmt: Annotated[
        str, typer.Option("--from", help="Input format (a parse format, or auto).")
    ] = "jsonl",
    option: Annotated[
        list[str] | None,
        typer.Option("--option", "-o", help="Encoder option key=value (a.b=v nests); repeat."),
    ] = None,
    opening_balance: Annotated[
        str,
        typer.Option(
            "--opening-balance",
            help="Opening balance of each account's first statement when entries carry no "
            "balances.",
        ),
    ] = "0",
    zone: Annotated[
        str, typer.Option("--zone", help="Time zone of statement days.")
    ] = DEFAULT_ZONE,
    statements: Annotated[
        bool,
        typer.Option(
            "--statements",
            help="Statement mode for encoders that do both (csv, template): one document per "
            "account per day.",
        ),
    ] = False,
    stan_start: Annotated[
        int, typer.Option("--stan-start", help="First STAN (iso8583); each message its own.")
    ] = 1,
    out_path: Annotated[
        Path | None, typer.Option("--out", help="Write here instead of standard output.")
    ] = None,
) -> None:
    """Encode transactions as ISO 8583, camt.053/054, MT940, OFX, CSV, JSON or a template.

    ISO 8583 prints one message per line as uppercase hex (no length prefix). Statement
    formats get one statement per account per day. Problems go to stderr with the
    receipt; good transactions are still written. Exit status: 0 all encoded, 1 some
    input rejected or not encodable, 2 usage error.
    """
    if to not in encoder_names():
        errors.print(f"unknown encoder {to!r}; known: {', '.join(encoder_names())}")
        raise typer.Exit(2)
    if fmt != "auto" and fmt not in format_names():
        errors.print(f"unknown format {fmt!r}; known: {', '.join([*format_names(), 'auto'])}")
        raise typer.Exit(2)
    try:
        options = parse_options(option or [])
        opening = Decimal(opening_balance)
        if not opening.is_finite():
            raise InvalidOperation
    except ValueError as exc:
        errors.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(2) from None
    except InvalidOperation:
        errors.print(f"--opening-balance {opening_balance!r} is not a number")
        raise typer.Exit(2) from None
    if not 1 <= stan_start <= 999_999:
        errors.print("--stan-start must be 1..999999")
        raise typer.Exit(2)
    encoder = _encoder(to, options)
    transactions, rejected = _read(files, fmt)
    out: IO[bytes]
    out = out_path.open("wb") if out_path else sys.stdout.buffer
    try:
        if to == "iso8583":
            failed = _iso8583(encoder, transactions, out, stan_start)
        elif statements or (
            not hasattr(encoder, "encode") and not hasattr(encoder, "encode_batch")
        ):
            if not hasattr(encoder, "encode_statement"):
                errors.print(f"the {to} encoder writes no statements")
                raise typer.Exit(2)
            failed = _statements(encoder, transactions, out, zone, opening)
        elif hasattr(encoder, "encode_batch"):
            try:
                out.write(encoder.encode_batch(transactions))
                failed = 0
            except EncodeError as exc:
                print(str(exc), file=sys.stderr)
                failed = 1
        else:
            failed = _messages(encoder, transactions, out)
    finally:
        if out_path:
            out.close()
        else:
            out.flush()
    if rejected or failed:
        raise typer.Exit(1)


@iso8583_app.command("decode")
def decode(
    message: Annotated[
        str,
        typer.Argument(
            help="The message as hex, or a file: hex lines (transform output) or raw bytes."
        ),
    ],
    spec: Annotated[
        str, typer.Option("--spec", help="1987-ascii, 1987-binary, 1993, or a .yaml spec file.")
    ] = "1987-ascii",
) -> None:
    """Print an ISO 8583 message field by field; PAN (2) and account data (102, 103) masked."""
    from ..encoders.iso8583 import load_spec
    from ..encoders.iso8583.decode import DecodeError, decode_message, read_messages

    try:
        layout = load_spec(spec)
    except EncodeError as exc:
        errors.print(str(exc), markup=False, highlight=False)
        raise typer.Exit(2) from None
    path = Path(message)
    if len(message) < 4096 and path.is_file():
        messages = read_messages(path.read_bytes())
    else:
        text = "".join(message.split())
        if not text or len(text) % 2 or any(c not in "0123456789abcdefABCDEF" for c in text):
            errors.print("MESSAGE is neither a file nor hex digits", highlight=False)
            raise typer.Exit(2)
        messages = [bytes.fromhex(text)]
    bad = 0
    for number, raw in enumerate(messages, 1):
        title = f"message {number} of {len(messages)}" if len(messages) > 1 else None
        try:
            fields = decode_message(raw, layout)
        except DecodeError as exc:
            bad += 1
            errors.print(f"{title or 'message'}: {exc}", markup=False, highlight=False)
            continue
        table = Table(title=title, title_justify="left", show_lines=False)
        table.add_column("Field", justify="right")
        table.add_column("Description")
        table.add_column("Len", justify="right")
        table.add_column("Value", overflow="fold")
        for item in fields:
            table.add_row(item.key, item.description, str(item.length), Text(repr(item.value)))
        console.print(table)
    if bad:
        raise typer.Exit(1)
