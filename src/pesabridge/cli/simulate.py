"""``pesabridge simulate``: post realistic provider callbacks to a running server."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from ..devtools.simulator import PROVIDERS, Simulator


def simulate(
    provider: Annotated[
        str, typer.Argument(help=f"One of: {', '.join(PROVIDERS)}.", show_default=False)
    ],
    url: Annotated[str, typer.Option("--url", help="The callback URL to post to.")],
    count: Annotated[int, typer.Option("--count", min=1, help="Callbacks to send.")] = 100,
    rate: Annotated[
        float, typer.Option("--rate", min=0, help="At most this many per second (0: no limit).")
    ] = 50.0,
    concurrency: Annotated[int, typer.Option("--concurrency", min=1, max=1024)] = 16,
    key: Annotated[
        str | None,
        typer.Option("--key", envvar="PESABRIDGE_SIM_KEY", help="K2 signing key (kopokopo)."),
    ] = None,
) -> None:
    """Send COUNT callbacks of PROVIDER, each with a fresh receipt; print what was answered.

    Exit status 1 when any callback was not acknowledged.
    """
    if provider not in PROVIDERS:
        typer.echo(f"unknown provider {provider!r}; known: {', '.join(PROVIDERS)}", err=True)
        raise typer.Exit(2)
    simulator = Simulator(provider, url, key=key)
    report = asyncio.run(simulator.run(count=count, rate=rate or None, concurrency=concurrency))
    typer.echo(report.summary())
    if report.acknowledged != report.sent:
        raise typer.Exit(1)
