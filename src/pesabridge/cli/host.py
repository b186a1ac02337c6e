"""``pesabridge iso8583-host``: run the test ISO 8583 host."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

import typer

from ..devtools.iso8583_host import HostRule, Iso8583Host, Mode
from ..encoders.iso8583 import DEFAULT_SPEC
from .common import console


def iso8583_host(
    port: Annotated[int, typer.Option(help="TCP port (0: any free).")] = 8583,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    spec: Annotated[str, typer.Option(help="Spec name or YAML file.")] = DEFAULT_SPEC,
    mode: Annotated[
        str, typer.Option(help="approve, decline, slow, silent or drop (every message).")
    ] = "approve",
    delay: Annotated[float, typer.Option(help="Seconds to wait before answering.")] = 0.0,
    code: Annotated[str, typer.Option(help="Response code when declining.")] = "05",
) -> None:
    """A real ISO 8583 host (2-byte length framing) that approves, declines, answers
    slowly or never, or drops the connection, and counts repeated messages."""
    if mode not in ("approve", "decline", "slow", "silent", "drop"):
        console.print(f"unknown mode {mode!r}")
        raise typer.Exit(2)
    server = Iso8583Host(spec=spec, host=host, port=port)
    chosen: Mode = mode  # type: ignore[assignment]
    server.add_rule(HostRule(mode=chosen, times=10**12, delay=delay, code=code))

    async def main() -> None:
        await server.start()
        console.print(f"ISO 8583 host ({server.spec.name}) on {host}:{server.port}, mode {mode}")
        try:
            await asyncio.Event().wait()
        finally:
            await server.stop()
            console.print(
                f"{len(server.state.postings)} distinct messages, {server.state.duplicates} repeats"
            )

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())
