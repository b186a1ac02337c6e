"""Settings (admins): sources, sinks and routes as configured, secrets redacted; users."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import quote_plus

from starlette.responses import Response
from starlette.routing import Route

from ...store import utcnow
from .. import audit, present
from ..users import Role, UserError, add_user, list_users, set_disabled
from ..web import Ctx, Dashboard, first, page

_URL_PASSWORD = re.compile(r"(://[^/@:\s]+:)[^@/\s]+@")


def _shown(section: Any) -> str:
    """A config section as JSON with every secret replaced: SecretStr fields (already
    masked by pydantic), secret-looking keys, and passwords inside URLs."""
    data = section.model_dump(mode="json", by_alias=True, exclude_none=True)
    text = json.dumps(present.redact(data), indent=2, default=str)
    return _URL_PASSWORD.sub(r"\1[redacted]@", text)


def routes(dash: Dashboard) -> list[Route]:
    """``/settings``, ``/settings/users`` (POST) and ``/audit``."""

    @page(dash, Role.ADMIN)
    def settings(ctx: Ctx) -> Response:
        config = dash.config
        return ctx.render(
            "settings.html",
            database=ctx.store.display_url,
            sources=[(s.name, s.type, _shown(s)) for s in config.sources] if config else [],
            sinks=[(s.name, s.type, _shown(s)) for s in config.sinks] if config else [],
            routes=[_shown(r) for r in config.routes] if config else [],
            has_config=config is not None,
            users=list_users(ctx.store),
            roles=[r.value for r in Role],
            flash=ctx.request.query_params.get("done", ""),
            now=utcnow(),
        )

    @page(dash, Role.ADMIN)
    def users(ctx: Ctx) -> Response:
        action = first(ctx.form, "action")
        username = first(ctx.form, "username").strip()
        if username == ctx.session.user.username and action == "disable":
            return ctx.redirect("/settings?done=You+cannot+disable+yourself.")
        try:
            if action == "add":
                add_user(ctx.store, username, first(ctx.form, "password"), first(ctx.form, "role"))
                ctx.audit("user.add", username, role=first(ctx.form, "role"))
                message = f"User {username} added."
            elif action in ("disable", "enable"):
                set_disabled(ctx.store, username, action == "disable")
                ctx.audit(f"user.{action}", username)
                message = f"User {username} {action}d."
            else:
                message = "Unknown action."
        except UserError as exc:
            message = f"Not done: {exc}"
        return ctx.redirect(f"/settings?done={quote_plus(message)}")

    @page(dash)
    def audit_page(ctx: Ctx) -> Response:
        try:
            page_no = max(1, int(ctx.request.query_params.get("page", "1")))
        except ValueError:
            page_no = 1
        found, total = audit.entries(ctx.store, limit=100, offset=(page_no - 1) * 100)
        return ctx.render(
            "audit.html", entries=found, total=total, page_no=page_no, more=page_no * 100 < total
        )

    return [
        Route("/settings", settings, methods=["GET"]),
        Route("/settings/users", users, methods=["POST"]),
        Route("/audit", audit_page, methods=["GET"]),
    ]
