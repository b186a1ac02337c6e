"""Files: the file ledger with rows accepted and rejected; rejects as CSV."""

from __future__ import annotations

import csv
import io

from sqlalchemy import func, select
from starlette.responses import Response
from starlette.routing import Route

from ...store.schema import files, rejects
from .. import present
from ..web import Ctx, Dashboard, page, secured

PAGE = 100


def routes(dash: Dashboard) -> list[Route]:
    """``/files`` and ``/files/{id}/rejects.csv`` (``/files/callbacks/rejects.csv`` for
    rejected callbacks, which have no file)."""

    @page(dash)
    def listing(ctx: Ctx) -> Response:
        try:
            page_no = max(1, int(ctx.request.query_params.get("page", "1")))
        except ValueError:
            page_no = 1
        with ctx.store.read() as conn:
            rows = (
                conn.execute(
                    select(files)
                    .order_by(files.c.id.desc())
                    .limit(PAGE + 1)
                    .offset((page_no - 1) * PAGE)
                )
                .mappings()
                .all()
            )
            loose = conn.execute(
                select(func.count()).select_from(rejects).where(rejects.c.file_id.is_(None))
            ).scalar_one()
        return ctx.render(
            "files.html", files=rows[:PAGE], more=len(rows) > PAGE, page_no=page_no, loose=loose
        )

    @page(dash)
    def rejects_csv(ctx: Ctx) -> Response:
        raw_id = ctx.request.path_params["id"]
        r = rejects.c
        condition = r.file_id.is_(None) if raw_id == "callbacks" else r.file_id == int(raw_id)
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(("line", "field", "reason", "source", "raw"))
        with ctx.store.read() as conn:
            name = (
                "callbacks"
                if raw_id == "callbacks"
                else conn.execute(select(files.c.name).where(files.c.id == int(raw_id))).scalar()
            )
            if name is None:
                return ctx.render("notfound.html", 404, what=f"file {raw_id}")
            for row in conn.execute(select(rejects).where(condition).order_by(r.line, r.id)):
                raw = row.raw.decode("utf-8", errors="replace")
                writer.writerow(
                    (
                        row.line or "",
                        present.csv_cell(row.field),
                        present.csv_cell(row.reason),
                        present.csv_cell(row.source),
                        present.csv_cell(raw if ctx.unmasked else present.mask_numbers(raw)),
                    )
                )
        ctx.audit("export.rejects", str(name))
        safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in str(name))[:100]
        return secured(
            Response(
                buffer.getvalue(),
                media_type="text/csv; charset=utf-8",
                headers={"Content-Disposition": f'attachment; filename="rejects-{safe}.csv"'},
            )
        )

    return [
        Route("/files", listing, methods=["GET"]),
        Route("/files/{id}/rejects.csv", rejects_csv, methods=["GET"]),
    ]
