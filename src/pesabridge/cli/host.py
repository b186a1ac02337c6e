"""``pesabridge iso8583-host``: run the test ISO 8583 host."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Annotated, cast

import typer

from ..devtools.iso8583_host import MODES, Iso8583Host, parse_rule
from ..encoders.iso8583 import DEFAULT_SPEC
from ..sinks.iso8583.framing import Framing, LengthKind, parse_tpdu
from .common import console

CONTROL_HELP = """Commands on the control port, one per line: 'mode MODE [CODE|DELAY]
[times=N] [mtis=0200,0420] [post=no]' replaces the rules, 'add ...' appends one, 'clear'
approves everything again, 'stats' answers the host's counts as JSON."""


async def _control(server: Iso8583Host, line: str) -> str:
    words = line.split()
    if not words:
        return "error: empty command"
    command, rest = words[0], words[1:]
    try:
        if command == "stats":
            return json.dumps(server.state.summary())
        if command == "clear":
            server.clear_rules()
        elif command == "mode":
            rule = parse_rule(rest)
            server.clear_rules()
            server.add_rule(rule)
        elif command == "add":
            server.add_rule(parse_rule(rest))
        else:
            return f"error: unknown command {command!r} (mode, add, clear, stats)"
    except ValueError as exc:
        return f"error: {exc}"
    return "ok"


def iso8583_host(
    port: Annotated[int, typer.Option(help="TCP port (0: any free).")] = 8583,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    spec: Annotated[str, typer.Option(help="Spec name or YAML file.")] = DEFAULT_SPEC,
    mode: Annotated[
        str, typer.Option(help=f"{', '.join(MODES)} (every financial message).")
    ] = "approve",
    delay: Annotated[float, typer.Option(help="Seconds to wait before answering.")] = 0.0,
    code: Annotated[str, typer.Option(help="Response code when declining.")] = "05",
    length: Annotated[
        str, typer.Option(help="Length prefix: binary2, ascii4 or binary4.")
    ] = "binary2",
    includes_length: Annotated[
        bool, typer.Option(help="The length counts the prefix itself.")
    ] = False,
    tpdu: Annotated[str, typer.Option(help="TPDU before each message, hex (6000000000).")] = "",
    rrn_duplicates: Annotated[
        bool, typer.Option(help="Answer 94 to a message whose RRN is already booked.")
    ] = False,
    control_port: Annotated[
        int, typer.Option(help="Also listen here for line commands (0: no). " + CONTROL_HELP)
    ] = 0,
) -> None:
    """A real ISO 8583 host that approves, declines, answers 94, answers slowly or never,
    or drops the connection, books postings and reversals, and counts repeats and double
    postings (postings minus reversals per RRN)."""
    if mode not in MODES:
        console.print(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        raise typer.Exit(2)
    if length not in ("binary2", "ascii4", "binary4"):
        console.print(f"unknown length {length!r}; binary2, ascii4 or binary4")
        raise typer.Exit(2)
    try:
        framing = Framing(
            length=cast(LengthKind, length),
            includes_length=includes_length,
            tpdu=parse_tpdu(tpdu),
        )
    except ValueError as exc:
        console.print(str(exc))
        raise typer.Exit(2) from None
    server = Iso8583Host(
        spec=spec, host=host, port=port, framing=framing, rrn_duplicates=rrn_duplicates
    )
    words = [mode] + ([code] if mode == "decline" else [str(delay)] if delay else [])
    if mode != "approve" or delay:
        server.add_rule(parse_rule(words))

    async def serve_control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while line := await reader.readline():
                writer.write((await _control(server, line.decode(errors="replace"))).encode())
                writer.write(b"\n")
                await writer.drain()
        writer.close()

    async def main() -> None:
        await server.start()
        control = None
        if control_port:
            control = await asyncio.start_server(serve_control, host, control_port)
        console.print(
            f"ISO 8583 host ({server.spec.name}, {length}"
            f"{', TPDU ' + tpdu if tpdu else ''}) on {host}:{server.port}, mode {mode}"
            + (f", control port {control_port}" if control_port else "")
        )
        try:
            await asyncio.Event().wait()
        finally:
            if control is not None:
                control.close()
            await server.stop()
            state = server.state
            console.print(
                f"{len(state.postings)} distinct messages, {state.duplicates} repeats, "
                f"{len(state.double_postings)} RRNs posted more than once"
            )

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
