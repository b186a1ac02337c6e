"""Operations: ``status``, ``deliveries``, ``replay``."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from typing import Annotated

import typer
from rich.table import Table

from .common import ConfigOption, DbOption, console, errors, open_store

STATES = ("pending", "in_flight", "delivered", "dead")


def status(
    config_path: ConfigOption = None,
    db: DbOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Counts per state and per sink, files, rejects, discrepancies, source health."""
    store, _ = open_store(db, config_path)
    try:
        counts = store.status()
    finally:
        store.close()
    if as_json:
        console.print_json(json.dumps(counts, default=str))
        return
    console.print(f"ledger: {store.display_url}")
    console.print(
        f"transactions: {counts['transactions']}  evidence: {counts['evidence']}  "
        f"rejects: {counts['rejects']}  open discrepancies: {counts['open_discrepancies']}"
    )
    files = ", ".join(f"{k}: {v}" for k, v in sorted(counts["files"].items())) or "none"
    console.print(f"files: {files}")
    table = Table(title="deliveries per sink")
    table.add_column("sink")
    for state in STATES:
        table.add_column(state, justify="right")
    for sink, per_state in sorted(counts["deliveries"].items()):
        table.add_row(sink, *(str(per_state.get(state, 0)) for state in STATES))
    console.print(table)
    if counts["sources"]:
        sources = Table(title="sources")
        for column in ("source", "last poll", "last success", "last error"):
            sources.add_column(column)
        for row in counts["sources"]:
            error = (
                f"{row['last_error_at']:%Y-%m-%d %H:%M:%S} {row['last_error']}"
                if row["last_error"]
                else ""
            )
            sources.add_row(
                row["name"], _when(row["last_poll_at"]), _when(row["last_success_at"]), error
            )
        console.print(sources)


def _when(value: object) -> str:
    return "" if value is None else f"{value:%Y-%m-%d %H:%M:%S}Z"


def _since(value: str | None) -> datetime | None:
    """``--since``: an ISO date or time (UTC when no zone), or a duration like 2h, 30m, 7d."""
    if value is None:
        return None
    match = re.fullmatch(r"(\d+)([smhd])", value.strip())
    if match:
        unit = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return datetime.now(UTC) - timedelta(**{unit: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        errors.print(f"--since {value!r}: give an ISO date/time or a duration like 2h, 7d")
        raise typer.Exit(2) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


deliveries_app = typer.Typer(
    help="List deliveries (filters below), or explain one: deliveries show ID.",
    invoke_without_command=True,
    no_args_is_help=False,
)


@deliveries_app.callback(invoke_without_command=True)
def deliveries(
    ctx: typer.Context,
    config_path: ConfigOption = None,
    db: DbOption = None,
    failed: Annotated[bool, typer.Option("--failed", help="Only dead or retrying.")] = False,
    state: Annotated[str | None, typer.Option(help="Only this state.")] = None,
    sink: Annotated[str | None, typer.Option(help="Only this sink's.")] = None,
    receipt: Annotated[str | None, typer.Option(help="Only this receipt's.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Changed since: ISO date/time, or 2h, 30m, 7d.")
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.")] = 50,
) -> None:
    """List deliveries with their state, attempts, document id and last error."""
    if ctx.invoked_subcommand is not None:
        ctx.obj = (config_path, db)
        return
    if state is not None and state not in STATES:
        errors.print(f"unknown state {state!r}; one of {', '.join(STATES)}")
        raise typer.Exit(2)
    store, _ = open_store(db, config_path)
    try:
        views = store.deliveries(
            failed=failed,
            state=state,
            limit=limit,
            sink=sink,
            receipt=receipt,
            since=_since(since),
        )
    finally:
        store.close()
    table = Table(title="deliveries")
    columns = ("id", "sink", "state", "attempts", "transaction", "document", "next attempt")
    for column in (*columns, "last error"):
        table.add_column(column)
    for v in views:
        table.add_row(
            str(v.id),
            v.sink,
            v.state,
            str(v.attempts),
            v.transaction.describe(),
            v.document_id or "",
            _when(v.next_attempt_at) if v.state == "pending" else "",
            (f"{v.last_status} " if v.last_status else "") + (v.last_error or ""),
        )
    console.print(table)


@deliveries_app.command("show")
def show(
    ctx: typer.Context,
    delivery_id: Annotated[int, typer.Argument(help="The delivery's id.")],
    config_path: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Explain one delivery: every attempt, what was sent, the answer, what comes next."""
    parent_config, parent_db = ctx.obj or (None, None)
    store, _ = open_store(db or parent_db, config_path or parent_config)
    try:
        detail = store.delivery(delivery_id)
    finally:
        store.close()
    if detail is None:
        errors.print(f"no delivery {delivery_id}")
        raise typer.Exit(1)
    v = detail.view
    console.print(f"delivery {v.id} to [bold]{v.sink}[/]: {v.state}", highlight=False)
    console.print(f"transaction: {v.transaction.describe()}", highlight=False)
    console.print(f"idempotency key: {v.idempotency_key}", highlight=False)
    if v.document_id:
        console.print(f"back-office document: {v.document_id}", highlight=False)
    if v.delivered_at:
        console.print(f"delivered at: {_when(v.delivered_at)}")
    if detail.exchange is not None:
        # The ISO 8583 sink's journal: not an attempt, where the exchange with the host stands.
        x = detail.exchange
        flag = "  [yellow]outcome unknown[/]" if x.unresolved else ""
        console.print(
            f"ISO 8583 exchange: {x.phase} (updated {_when(x.updated_at)}){flag}", highlight=False
        )
        console.print(f"  on the wire: {x.describe()}", highlight=False)
    for a in detail.attempts:
        flag = "  [yellow]outcome unknown[/]" if a.unknown_outcome else ""
        code = f" HTTP {a.status_code}" if a.status_code else ""
        console.print(
            f"attempt {a.number} {_when(a.started_at)} by {a.worker}: {a.outcome}{code}{flag}",
            highlight=False,
        )
        if a.request_summary:
            console.print(f"  sent: {a.request_summary}", highlight=False)
        if a.error:
            console.print(f"  error: {a.error}", highlight=False)
        if a.response:
            console.print(f"  response: {a.response[:300]}", highlight=False, markup=False)
    if v.state == "pending":
        why = []
        if detail.paused:
            why.append(f"sink {v.sink} is paused (pesabridge sinks resume {v.sink})")
        if detail.held:
            why.append(f"held until the original {v.transaction.related_receipt} is delivered")
        console.print(
            f"next attempt: {_when(v.next_attempt_at)}" + (f" — {'; '.join(why)}" if why else ""),
            highlight=False,
        )
    elif v.state == "in_flight":
        console.print(f"in flight: {detail.lease_owner}, lease to {_when(detail.lease_expires_at)}")
    elif v.state == "dead":
        console.print(f"dead letter: pesabridge replay {v.id} after fixing the cause")


def replay(
    ids: Annotated[
        list[int] | None, typer.Argument(help="Delivery ids.", show_default=False)
    ] = None,
    dead: Annotated[bool, typer.Option("--dead", help="Every dead letter.")] = False,
    sink: Annotated[str | None, typer.Option(help="Only this sink's.")] = None,
    receipt: Annotated[str | None, typer.Option(help="Only this receipt's.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Changed since: ISO date/time, or 2h, 30m, 7d.")
    ] = None,
    config_path: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Make deliveries due again (dead letters after the cause is fixed).

    By id; or --dead with optional --sink/--receipt/--since; or a --receipt alone
    (its undelivered deliveries)."""
    if not ids and not dead and receipt is None:
        errors.print("say which: delivery ids, --dead (with --sink, --since ...), or --receipt")
        raise typer.Exit(2)
    store, _ = open_store(db, config_path)
    try:
        count = store.replay(
            ids=ids or None, dead=dead, sink=sink, receipt=receipt, since=_since(since)
        )
    finally:
        store.close()
    console.print(f"{count} deliveries queued again")


sinks_app = typer.Typer(help="Pause, resume and list sinks.", no_args_is_help=True)


@sinks_app.command("list")
def sinks_list(config_path: ConfigOption = None, db: DbOption = None) -> None:
    """Every sink: paused or not, deliveries per state."""
    store, config = open_store(db, config_path)
    try:
        states = store.sink_states()
    finally:
        store.close()
    names = sorted(set(states) | {s.name for s in (config.sinks if config else [])})
    table = Table(title="sinks")
    for column in ("sink", "paused", *STATES):
        table.add_column(column)
    for name in names:
        st = states.get(name)
        paused = f"paused {_when(st.updated_at)} {st.reason or ''}" if st and st.paused else ""
        counts = st.counts if st else {}
        table.add_row(name, paused, *(str(counts.get(state, 0)) for state in STATES))
    console.print(table)


@sinks_app.command("pause")
def sinks_pause(
    name: Annotated[str, typer.Argument(help="The sink.")],
    reason: Annotated[str | None, typer.Option(help="Why; shown by sinks list.")] = None,
    config_path: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Stop delivering to a sink (in-flight deliveries finish); persisted."""
    store, _ = open_store(db, config_path)
    try:
        store.pause_sink(name, reason)
    finally:
        store.close()
    console.print(f"{name} paused")


@sinks_app.command("resume")
def sinks_resume(
    name: Annotated[str, typer.Argument(help="The sink.")],
    config_path: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Deliver to a paused sink again."""
    store, _ = open_store(db, config_path)
    try:
        store.resume_sink(name)
    finally:
        store.close()
    console.print(f"{name} resumed")
