"""A reconciliation report as a terminal table (rich), CSV, or printable HTML (Jinja2)."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from decimal import Decimal
from importlib import resources

from jinja2 import Environment, select_autoescape
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from ..model import mask_msisdn
from .records import EXCEPTION_KINDS, OUTCOMES, DaySummary, ReconciliationReport

FORMATS = ("table", "csv", "html")


def _columns(days: Sequence[DaySummary]) -> list[str]:
    """The outcomes that occur, in the canonical order."""
    present = {outcome for day in days for outcome in day.counts}
    return [outcome for outcome in OUTCOMES if outcome in present]


def _money(value: Decimal) -> str:
    return f"{value:,}"


def render_table(report: ReconciliationReport, console: Console) -> None:
    """The summary per day and the open exceptions, for a terminal."""
    columns = _columns(report.days)
    summary = Table(
        title=f"reconciliation {report.provider}/{report.account} {report.start} to {report.end}"
        f" (run {report.run_id})",
        title_justify="left",
    )
    summary.add_column("day")
    for outcome in columns:
        style = "red" if outcome in EXCEPTION_KINDS else None
        summary.add_column(outcome.replace("_", " "), justify="right", style=style)
    summary.add_column("open", justify="right")
    for day in report.days:
        cells = [
            f"{day.count(o)}\n{_money(day.amount(o))}" if day.count(o) else "" for o in columns
        ]
        summary.add_row(str(day.day), *cells, str(day.open_exceptions))
    parts: list[Table | Text] = [summary]
    if report.exceptions:
        listing = Table(title=f"{len(report.exceptions)} open exception(s)", title_justify="left")
        for name in ("id", "day", "kind", "receipt", "amount", "detail"):
            listing.add_column(name, justify="right" if name in ("id", "amount") else "left")
        for e in report.exceptions:
            listing.add_row(
                str(e.id),
                str(e.day),
                e.kind,
                e.receipt or "",
                _money(e.amount) if e.amount is not None else "",
                mask_in(e.detail),
            )
        parts.append(listing)
    else:
        parts.append(Text("no open exceptions", style="green"))
    if report.repaired:
        parts.append(
            Text(
                f"{len(report.repaired)} backfilled (in the statement, never received by "
                f"callback); {report.backfilled_deliveries} delivery(ies) added by this run"
            )
        )
    for method in report.matches:
        parts.append(
            Text(f"matched by {method.method}: {method.pairs} (confidence {method.confidence})")
        )
    for note in report.notes:
        parts.append(Text(f"note: {note}", style="yellow"))
    console.print(Group(*parts))


def mask_in(text: str) -> str:
    """Details never carry full MSISDNs; this masks any that slipped in."""
    words = text.split(" ")
    return " ".join(mask_msisdn(w) if w.isdigit() and len(w) >= 10 else w for w in words)


def render_csv(report: ReconciliationReport) -> str:
    """Two sections in one CSV: per-day rows (``summary``), then exception rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["section", "provider", "account", "day", "outcome", "count", "amount",
                     "currency", "id", "status", "receipt", "detail"])  # fmt: skip
    for day in report.days:
        for outcome in _columns([day]):
            writer.writerow(["summary", day.provider, day.account, day.day, outcome,
                             day.count(outcome), day.amount(outcome), day.currency,
                             "", "", "", ""])  # fmt: skip
    for e in [*report.exceptions, *report.repaired]:
        writer.writerow(["exception", e.provider, e.account, e.day, e.kind, 1,
                         "" if e.amount is None else e.amount, e.currency or "", e.id,
                         e.status, e.receipt or "", mask_in(e.detail)])  # fmt: skip
    return out.getvalue()


def render_html(report: ReconciliationReport) -> str:
    """A self-contained, printable HTML page (no scripts, no external resources)."""
    template_text = (
        resources.files(__package__).joinpath("templates/report.html.j2").read_text("utf-8")
    )
    environment = Environment(
        autoescape=select_autoescape(default=True), keep_trailing_newline=True
    )
    environment.filters["money"] = _money
    environment.filters["masked"] = mask_in
    template = environment.from_string(template_text)
    return template.render(
        report=report,
        columns=_columns(report.days),
        exception_kinds=EXCEPTION_KINDS,
    )
