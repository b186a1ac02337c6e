"""Failures: dead letters by sink and reason; replay and resolve (operators)."""

from __future__ import annotations

from starlette.responses import Response
from starlette.routing import Route

from .. import audit, deadletters
from ..users import Role
from ..web import Ctx, Dashboard, first, page


def _ids(ctx: Ctx) -> list[int]:
    ids = []
    for value in ctx.form.get("delivery", []):
        try:
            ids.append(int(value))
        except ValueError:
            continue
    return ids


def _group(ctx: Ctx) -> tuple[str, int | None, str] | None:
    sink = first(ctx.form, "group_sink")
    if not sink:
        return None
    status_text = first(ctx.form, "group_status")
    status = int(status_text) if status_text.isdigit() else None
    return sink, status, first(ctx.form, "group_error")


def _back(ctx: Ctx) -> str:
    back = first(ctx.form, "back", "/failures")
    # Only a path inside the dashboard.
    return back if back.startswith("/") and not back.startswith("//") else "/failures"


def routes(dash: Dashboard) -> list[Route]:
    """``/failures``, ``/failures/replay`` and ``/failures/resolve``."""

    @page(dash)
    def listing(ctx: Ctx) -> Response:
        show_resolved = ctx.request.query_params.get("resolved") == "1"
        with ctx.store.read() as conn:
            found = deadletters.groups(conn, resolved=show_resolved)
            notes = (
                deadletters.resolutions(conn, [i["id"] for g in found for i in g.items])
                if show_resolved
                else {}
            )
        return ctx.render(
            "failures.html",
            groups=found,
            notes=notes,
            show_resolved=show_resolved,
            may_act=ctx.session.user.may(Role.OPERATOR),
            flash=ctx.request.query_params.get("done", ""),
        )

    @page(dash, Role.OPERATOR)
    def replay(ctx: Ctx) -> Response:
        group = _group(ctx)
        if group is not None and first(ctx.form, "scope") == "group":
            with ctx.store.read() as conn:
                ids = deadletters.group_ids(conn, *group)
        else:
            ids = _ids(ctx)
        if not ids:
            return ctx.redirect("/failures?done=Nothing+selected.")
        count = ctx.store.replay(ids=ids)
        ctx.audit("replay", ",".join(map(str, ids[:50])), deliveries=len(ids), replayed=count)
        if _back(ctx) != "/failures":
            return ctx.redirect(_back(ctx))
        return ctx.redirect(f"/failures?done={count}+delivery(ies)+due+again.")

    @page(dash, Role.OPERATOR)
    def resolve(ctx: Ctx) -> Response:
        comment = first(ctx.form, "comment").strip()[:2000]
        if not comment:
            return ctx.redirect("/failures?done=A+comment+is+required+to+mark+resolved.")
        group = _group(ctx)
        with ctx.store.write() as conn:
            if group is not None and first(ctx.form, "scope") == "group":
                ids = deadletters.group_ids(conn, *group)
            else:
                ids = _ids(ctx)
            count = deadletters.resolve(conn, ids, ctx.session.user.username, comment)
            audit.write(
                conn,
                ctx.session.user.username,
                "resolve",
                ",".join(map(str, ids[:50])),
                {"deliveries": count, "comment": comment},
                ctx.client(),
            )
        return ctx.redirect(f"/failures?done={count}+dead+letter(s)+marked+resolved.")

    return [
        Route("/failures", listing, methods=["GET"]),
        Route("/failures/replay", replay, methods=["POST"]),
        Route("/failures/resolve", resolve, methods=["POST"]),
    ]
