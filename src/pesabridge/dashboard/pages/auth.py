"""Logging in and out."""

from __future__ import annotations

import secrets
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from .. import audit
from ..sessions import COOKIE, LIFETIME, create_session, end_session, load_session
from ..users import LOCKOUT, authenticate
from ..web import Dashboard, csrf_ok, is_tls, render, secured

LOGIN_COOKIE = "pb_login"
"""The login form's CSRF token (double submit: cookie and form field must agree)."""


def _safe_next(base: str, target: str) -> str:
    # Only back into the dashboard: never an open redirect to another site.
    if target.startswith(base + "/") and not target.startswith("//") and "\\" not in target:
        return target
    return base + "/"


def routes(dash: Dashboard) -> list[Route]:
    """``/login`` (GET, POST) and ``/logout`` (POST)."""

    def login_page(request: Request, status: int = 200, **values: Any) -> Response:
        token = secrets.token_urlsafe(24)
        base = str(request.scope.get("root_path", ""))
        response = render(
            dash,
            request,
            "login.html",
            status,
            session=None,
            login_csrf=token,
            next=request.query_params.get("next", base + "/"),
            **values,
        )
        response.set_cookie(
            LOGIN_COOKIE,
            token,
            max_age=3600,
            path=base + "/login",
            httponly=True,
            secure=is_tls(request),
            samesite="lax",
        )
        return response

    async def login(request: Request) -> Response:
        base = str(request.scope.get("root_path", ""))
        if request.method == "GET":
            session = await run_in_threadpool(load_session, dash.store, request.cookies.get(COOKIE))
            if session is not None:
                return RedirectResponse(base + "/", status_code=303)
            return login_page(request)
        form = await request.form()
        username = str(form.get("username") or "").strip()[:100]
        password = str(form.get("password") or "")[:1024]
        target = _safe_next(base, str(form.get("next") or ""))
        if not csrf_ok(request.cookies.get(LOGIN_COOKIE, ""), form.get("csrf")) or not (
            request.cookies.get(LOGIN_COOKIE)
        ):
            return login_page(
                request, 403, error="The form expired or was not sent from this page: try again."
            )
        client = request.client.host if request.client else ""
        if dash.login_limiter.blocked(client):
            await run_in_threadpool(
                audit.record, dash.store, username or "-", "login.rate_limited", client=client
            )
            return login_page(
                request, 429, error="Too many failed logins from here: wait a minute."
            )
        result = await run_in_threadpool(authenticate, dash.store, username, password)
        if result.user is None:
            dash.login_limiter.failed(client)
            await run_in_threadpool(
                audit.record,
                dash.store,
                username or "-",
                "login.failed",
                None,
                reason=result.reason,
                client=client,
            )
            message = (
                f"This account is locked after repeated failed logins; try again in "
                f"{int(LOCKOUT.total_seconds() // 60)} minutes or ask an admin."
                if result.reason == "locked"
                else "Wrong user name or password."
            )
            return login_page(request, 401, error=message, username=username)
        token, _session = await run_in_threadpool(create_session, dash.store, result.user)
        await run_in_threadpool(
            audit.record, dash.store, result.user.username, "login", client=client
        )
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(
            COOKIE,
            token,
            max_age=int(LIFETIME.total_seconds()),
            path=base + "/",
            httponly=True,
            secure=is_tls(request),
            samesite="lax",
        )
        response.delete_cookie(LOGIN_COOKIE, path=base + "/login")
        return secured(response)

    async def logout(request: Request) -> Response:
        base = str(request.scope.get("root_path", ""))
        token = request.cookies.get(COOKIE)
        session = await run_in_threadpool(load_session, dash.store, token)
        form = await request.form()
        if session is not None and token is not None:
            if not csrf_ok(session.csrf, form.get("csrf")):
                return render(dash, request, "forbidden.html", 403, session=session, needed="")
            await run_in_threadpool(end_session, dash.store, token)
            await run_in_threadpool(audit.record, dash.store, session.user.username, "logout")
        response = RedirectResponse(base + "/login", status_code=303)
        response.delete_cookie(COOKIE, path=base + "/")
        return secured(response)

    return [
        Route("/login", login, methods=["GET", "POST"]),
        Route("/logout", logout, methods=["POST"]),
    ]
