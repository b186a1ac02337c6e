"""Transactions: search, CSV export, and one transaction in detail."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from ...store.rows import from_minor
from ...store.schema import deliveries, discrepancies, evidence, transactions
from .. import present, search
from ..reconciliation import exceptions_for
from ..users import Role
from ..web import Ctx, Dashboard, page, secured

CSV_COLUMNS = (
    "occurred_at",
    "provider",
    "account",
    "receipt",
    "entry",
    "direction",
    "amount",
    "currency",
    "msisdn",
    "name",
    "reference",
    "status",
)


def routes(dash: Dashboard) -> list[Route]:
    """``/transactions``, ``/transactions.csv`` and ``/transactions/{id}``."""

    @page(dash)
    def listing(ctx: Ctx) -> Response:
        f = search.parse_filters(ctx.request.query_params, unmasked=ctx.unmasked)
        rows: list[dict[str, Any]] = []
        more = False
        states: dict[int, list[tuple[str, str]]] = {}
        searched = bool(ctx.request.query_params)
        if not f.errors:
            with ctx.store.read() as conn:
                rows, more = search.search(conn, f, dash.zone)
                states = search.delivery_states(conn, [r["id"] for r in rows])
        return ctx.render(
            "transactions.html",
            f=f,
            rows=rows,
            more=more,
            states=states,
            searched=searched,
            state_choices=search.STATES,
            unmasked=ctx.unmasked,
        )

    @page(dash)
    def export(ctx: Ctx) -> Response:
        f = search.parse_filters(ctx.request.query_params, unmasked=ctx.unmasked)
        if f.errors:
            return ctx.render(
                "transactions.html",
                400,
                f=f,
                rows=[],
                more=False,
                states={},
                searched=True,
                state_choices=search.STATES,
                unmasked=ctx.unmasked,
            )
        ctx.audit("export.transactions", None, query=f.query_string())
        unmasked, zone, store = ctx.unmasked, dash.zone, ctx.store

        def lines() -> Iterator[str]:
            buffer = io.StringIO()
            writer = csv.writer(buffer)
            writer.writerow(CSV_COLUMNS)
            with store.read() as conn:
                for n, r in enumerate(search.export_rows(conn, f, zone)):
                    writer.writerow(
                        [
                            r["occurred_at"].isoformat() if r["occurred_at"] else "",
                            present.csv_cell(r["provider"]),
                            present.csv_cell(r["account"]),
                            present.csv_cell(r["receipt"]),
                            r["entry"],
                            r["direction"],
                            str(from_minor(r["amount_minor"], r["currency"])),
                            r["currency"],
                            present.csv_cell(present.phone(r["msisdn"], unmasked)),
                            present.csv_cell(r["name"]),
                            present.csv_cell(r["reference"]),
                            r["status"],
                        ]
                    )
                    if n % 500 == 0:
                        yield buffer.getvalue()
                        buffer.seek(0)
                        buffer.truncate()
            yield buffer.getvalue()

        response = StreamingResponse(
            lines(),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="transactions.csv"'},
        )
        return secured(response)

    @page(dash)
    def detail(ctx: Ctx) -> Response:
        tid = int(ctx.request.path_params["id"])
        with ctx.store.read() as conn:
            row = conn.execute(select(transactions).where(transactions.c.id == tid)).mappings()
            txn = row.first()
            if txn is None:
                return ctx.render("notfound.html", 404, what=f"transaction {tid}")
            sightings = [
                dict(r, payload=present.pretty_payload(r["raw"], ctx.unmasked))
                for r in conn.execute(
                    select(evidence).where(evidence.c.transaction_id == tid).order_by(evidence.c.id)
                ).mappings()
            ]
            disputes = (
                conn.execute(
                    select(discrepancies)
                    .where(discrepancies.c.transaction_id == tid)
                    .order_by(discrepancies.c.id)
                )
                .mappings()
                .all()
            )
            delivery_ids = list(
                conn.execute(
                    select(deliveries.c.id)
                    .where(deliveries.c.transaction_id == tid)
                    .order_by(deliveries.c.id)
                ).scalars()
            )
        details = [ctx.store.delivery(i) for i in delivery_ids]
        recon = exceptions_for(ctx.store, tid)
        pending = any(d is not None and d.view.state in ("pending", "in_flight") for d in details)
        return ctx.render(
            "transaction.html",
            t=txn,
            evidence=sightings,
            discrepancies=disputes,
            deliveries=[d for d in details if d is not None],
            recon=recon,
            unmasked=ctx.unmasked,
            may_replay=ctx.session.user.may(Role.OPERATOR),
            # Watch a replayed delivery land: reload while anything is on its way.
            refresh=3 if pending else None,
        )

    return [
        Route("/transactions", listing, methods=["GET"]),
        Route("/transactions.csv", export, methods=["GET"]),
        Route("/transactions/{id:int}", detail, methods=["GET"]),
    ]
