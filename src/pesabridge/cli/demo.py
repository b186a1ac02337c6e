"""``pesabridge demo``."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..demo import DemoResult, describe, run_demo
from ..logs import configure_logging
from .common import console


def demo(
    once: Annotated[
        bool, typer.Option("--once", help="Exit when everything is delivered.")
    ] = False,
    port: Annotated[int, typer.Option(help="Port for the callback endpoint (0: any free).")] = 8080,
    workdir: Annotated[
        Path, typer.Option(help="Where the demo keeps its files and ledger.")
    ] = Path("demo-work"),
    log_level: Annotated[str, typer.Option(help="Log level.")] = "WARNING",
) -> None:
    """A statement file and Daraja callbacks posted to a sample back office, end to end."""
    configure_logging(log_level.upper())

    def report(result: DemoResult) -> None:
        table = Table(title="pesabridge demo")
        table.add_column("what")
        table.add_column("result", justify="right")
        for what, value in describe(result):
            table.add_row(what, value)
        console.print(table)
        if not once:
            console.print(
                f"still serving callbacks at http://127.0.0.1:{port}/daraja/c2b/confirmation; "
                f"try: pesabridge status --db sqlite:///{workdir / 'pesabridge.db'}  (Ctrl-C stops)"
            )

    async def main() -> bool:
        if not once:
            task = asyncio.current_task()
            assert task is not None
            loop = asyncio.get_running_loop()
            loop.add_signal_handler(signal.SIGINT, task.cancel)
            loop.add_signal_handler(signal.SIGTERM, task.cancel)
        result = await run_demo(workdir, port=port, once=once, report=report)
        return result.all_delivered

    try:
        ok = asyncio.run(main())
    except (asyncio.CancelledError, KeyboardInterrupt):
        return
    if not ok:
        raise typer.Exit(1)
