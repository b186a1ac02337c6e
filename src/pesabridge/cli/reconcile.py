"""``pesabridge reconcile``: statement against callbacks, deliveries and the back office.

Exit status: 0 when no exception is open for the period, 1 while exceptions remain,
2 when reconciliation could not run (bad arguments, unreadable input).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ..reconcile import (
    ReconcileError,
    list_exceptions,
    resolve_exception,
    run_reconciliation,
)
from ..reconcile.report import FORMATS, mask_in, render_csv, render_html, render_table
from .common import ConfigOption, DbOption, console, errors, open_store

reconcile_app = typer.Typer(
    help="Reconcile an account's days; list and resolve what is left.",
    no_args_is_help=False,
    invoke_without_command=True,
)


def _day(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors.print(f"{option}: {value!r} is not a date (YYYY-MM-DD)", highlight=False)
        raise typer.Exit(2) from None


@reconcile_app.callback()
def reconcile(
    ctx: typer.Context,
    account: Annotated[
        str | None, typer.Option("--account", "-a", help="The account (paybill, till ...).")
    ] = None,
    start: Annotated[
        str | None, typer.Option("--from", help="First day, YYYY-MM-DD, in the account's zone.")
    ] = None,
    end: Annotated[
        str | None, typer.Option("--to", help="Last day (inclusive); --from when omitted.")
    ] = None,
    statement: Annotated[
        Path | None,
        typer.Option(help="A statement file to ingest first (once by content) and check."),
    ] = None,
    backoffice: Annotated[
        Path | None,
        typer.Option(help="The back office's export of its postings (CSV, or .json)."),
    ] = None,
    sink: Annotated[
        str | None,
        typer.Option(help="The sink whose deliveries the back office's record is compared with."),
    ] = None,
    provider: Annotated[str, typer.Option(help="The account's provider.")] = "mpesa",
    fmt: Annotated[str, typer.Option("--format", help="table, csv or html.")] = "table",
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write the report here (default: stdout).")
    ] = None,
    config_path: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Reconcile an account over days: exit 0 when clean, 1 while exceptions remain."""
    if ctx.invoked_subcommand is not None:
        return
    if account is None or start is None:
        errors.print("give --account and --from (and --to for more than one day)")
        raise typer.Exit(2)
    if fmt not in FORMATS:
        errors.print(f"--format: {fmt!r} is not one of {', '.join(FORMATS)}")
        raise typer.Exit(2)
    first = _day(start, "--from")
    last = _day(end, "--to") or first
    assert first is not None
    assert last is not None
    if last < first:
        errors.print(f"--to {last} is before --from {first}")
        raise typer.Exit(2)
    store, config = open_store(db, config_path)
    try:
        report = run_reconciliation(
            store,
            account,
            first,
            last,
            statement=statement,
            backoffice=backoffice,
            config=config,
            provider=provider,
            sink=sink,
            trigger="cli",
        )
    except ReconcileError as exc:
        errors.print(f"[bold red]cannot reconcile:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    finally:
        store.close()
    if fmt == "table":
        if output is None:
            render_table(report, console)
        else:
            from rich.console import Console

            with output.open("w", encoding="utf-8") as stream:
                render_table(report, Console(file=stream, width=160))
    else:
        text = render_csv(report) if fmt == "csv" else render_html(report)
        if output is None:
            typer.echo(text, nl=False)
        else:
            output.write_text(text, encoding="utf-8")
    if not report.clean:
        raise typer.Exit(1)


@reconcile_app.command("resolve")
def resolve(
    exception_id: Annotated[int, typer.Argument(help="The exception's id.")],
    comment: Annotated[str, typer.Option(help="Why it is resolved (kept in the audit trail).")],
    user: Annotated[
        str | None, typer.Option(help="Who resolves it; default: the login name.")
    ] = None,
    config_path: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Close an open exception with a comment; later runs do not report it again."""
    import getpass

    who = user or getpass.getuser()
    store, _config = open_store(db, config_path)
    try:
        resolve_exception(store, exception_id, user=who, comment=comment)
    except ReconcileError as exc:
        errors.print(f"[bold red]{exc}[/]", highlight=False)
        raise typer.Exit(2) from None
    finally:
        store.close()
    console.print(f"exception {exception_id} resolved by {who}")


@reconcile_app.command("exceptions")
def exceptions(
    account: Annotated[str | None, typer.Option("--account", "-a")] = None,
    day: Annotated[str | None, typer.Option(help="Only this day (YYYY-MM-DD).")] = None,
    status: Annotated[str, typer.Option(help="open, resolved, repaired, cleared or all.")] = "open",
    limit: Annotated[int, typer.Option(min=1)] = 100,
    config_path: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """List reconciliation exceptions (open ones by default)."""
    store, _config = open_store(db, config_path)
    try:
        found = list_exceptions(
            store, account=account, day=_day(day, "--day"), status=status, limit=limit
        )
    finally:
        store.close()
    table = Table(title=f"{len(found)} exception(s)", title_justify="left")
    for name in ("id", "account", "day", "kind", "status", "by", "receipt", "amount"):
        table.add_column(name, no_wrap=name != "kind", overflow="fold")
    table.add_column("detail", overflow="fold", ratio=1)
    for e in found:
        resolved = f" (resolved: {e.comment})" if e.resolved_by else ""
        table.add_row(
            str(e.id),
            e.account,
            str(e.day),
            e.kind,
            e.status,
            e.resolved_by or "",
            e.receipt or "",
            "" if e.amount is None else f"{e.amount:,}",
            mask_in(e.detail) + resolved,
        )
    console.print(table)
