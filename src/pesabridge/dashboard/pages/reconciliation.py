"""Reconciliation: day summaries per account and exceptions to resolve (operators)."""

from __future__ import annotations

from datetime import date
from typing import Any
from urllib.parse import quote_plus

from starlette.responses import Response
from starlette.routing import Route

from ..reconciliation import api
from ..users import Role
from ..web import Ctx, Dashboard, first, page

PAGE = 100


def _day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


def routes(dash: Dashboard) -> list[Route]:
    """``/reconciliation`` and ``/reconciliation/resolve`` (POST)."""

    @page(dash)
    def listing(ctx: Ctx) -> Response:
        recon = api()
        if recon is None:
            return ctx.render("reconciliation.html", available=False)
        q = ctx.request.query_params
        account = (q.get("account") or "").strip() or None
        start, end = _day(q.get("start")), _day(q.get("end"))
        status = q.get("status") if q.get("status") in ("open", "resolved", "repaired") else "open"
        try:
            page_no = max(1, int(q.get("page", "1")))
        except ValueError:
            page_no = 1
        days = recon.list_day_summaries(ctx.store, account=account, start=start, end=end)
        exceptions: list[Any] = recon.list_exceptions(
            ctx.store, account=account, status=status, limit=PAGE + 1, offset=(page_no - 1) * PAGE
        )
        outcomes = sorted({o for d in days for o in d.counts})
        return ctx.render(
            "reconciliation.html",
            available=True,
            days=days,
            outcomes=outcomes,
            exceptions=exceptions[:PAGE],
            more=len(exceptions) > PAGE,
            page_no=page_no,
            account=account or "",
            start=start,
            end=end,
            wanted=status,
            may_resolve=ctx.session.user.may(Role.OPERATOR),
            flash=q.get("done", ""),
        )

    @page(dash, Role.OPERATOR)
    def resolve(ctx: Ctx) -> Response:
        recon = api()
        if recon is None:
            return ctx.redirect("/reconciliation")
        comment = first(ctx.form, "comment").strip()[:2000]
        try:
            exception_id = int(first(ctx.form, "exception"))
        except ValueError:
            return ctx.redirect("/reconciliation?done=No+exception+chosen.")
        if not comment:
            return ctx.redirect("/reconciliation?done=A+comment+is+required+to+resolve.")
        try:
            recon.resolve_exception(
                ctx.store, exception_id, user=ctx.session.user.username, comment=comment
            )
        except (LookupError, ValueError, getattr(recon, "ReconcileError", ValueError)) as exc:
            return ctx.redirect(f"/reconciliation?done={quote_plus(f'Not resolved: {exc}')}")
        ctx.audit("recon.resolve", str(exception_id), comment=comment)
        return ctx.redirect(f"/reconciliation?done=Exception+{exception_id}+resolved.")

    return [
        Route("/reconciliation", listing, methods=["GET"]),
        Route("/reconciliation/resolve", resolve, methods=["POST"]),
    ]
