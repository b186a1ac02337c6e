"""The ``pesabridge`` command line."""

from __future__ import annotations

import typer

from .. import __version__
from .batches import batches_app
from .files import fetch, files
from .ingest import ingest
from .ops import deliveries_app, replay, sinks_app, status
from .parse import parse
from .run import check_config, run, serve, worker
from .simulate import simulate
from .transform import iso8583_app, transform

app = typer.Typer(
    name="pesabridge",
    help="Mobile money to back office: pull, transform, post exactly once, reconcile.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"pesabridge {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """pesabridge."""


app.command()(parse)
app.command()(ingest)
app.command()(fetch)
app.command()(files)
app.command()(status)
app.add_typer(deliveries_app, name="deliveries")
app.command()(replay)
app.command()(run)
app.command()(serve)
app.command()(worker)
app.command("check-config")(check_config)
app.command()(transform)
app.command()(simulate)
app.add_typer(iso8583_app, name="iso8583")
app.add_typer(batches_app, name="batches")
app.add_typer(sinks_app, name="sinks")


def _register_demo() -> None:
    from .demo import demo

    app.command()(demo)


_register_demo()


def _register_iso8583_host() -> None:
    from .host import iso8583_host

    app.command("iso8583-host")(iso8583_host)


_register_iso8583_host()


def _register_failed_attempts() -> None:
    from .failures import failed_attempts

    app.command("failed-attempts")(failed_attempts)


_register_failed_attempts()


def _register_reconcile() -> None:
    from .reconcile import reconcile_app

    app.add_typer(reconcile_app, name="reconcile")


_register_reconcile()


def _register_users() -> None:
    from .users import users_app

    app.add_typer(users_app, name="users")


_register_users()


def main() -> None:
    """Console-script entry point."""
    app()
