"""What every dashboard page shares: the login check, role check, CSRF check, rendering
and security headers. Page modules declare handlers with :func:`page`."""

from __future__ import annotations

import hmac
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response

from ..config import Config
from ..store import Store
from . import audit, present
from .ratelimit import RateLimiter
from .sessions import COOKIE, Session, load_session
from .users import Role

HERE = Path(__file__).parent
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


@dataclass
class Dashboard:
    """The dashboard's shared state: the ledger, the config, templates, limits."""

    store: Store
    config: Config | None
    zone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    login_limiter: RateLimiter = field(default_factory=RateLimiter)
    env: Environment = field(
        default_factory=lambda: Environment(
            loader=FileSystemLoader(HERE / "templates"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
    )

    def __post_init__(self) -> None:
        self.zone = dashboard_zone(self.config)
        self.env.globals.update(money=present.money, phone=present.phone)
        self.env.filters["when"] = lambda moment: present.when(moment, self.zone)


def dashboard_zone(config: Config | None) -> ZoneInfo:
    """The zone of the dashboard's days and times: ``$PESABRIDGE_DASHBOARD_TZ``, else the
    reconciliation's zone (so "today" is the same day in both), else UTC."""
    name = os.environ.get("PESABRIDGE_DASHBOARD_TZ")
    if not name and config is not None:
        name = config.reconciliation.timezone
    return ZoneInfo(name or "UTC")


@dataclass
class Ctx:
    """One request as a handler sees it."""

    request: Request
    dash: Dashboard
    session: Session
    form: dict[str, Any]

    @property
    def store(self) -> Store:
        return self.dash.store

    @property
    def base(self) -> str:
        return str(self.request.scope.get("root_path", ""))

    @property
    def unmasked(self) -> bool:
        return self.session.user.sees_phone_numbers

    def client(self) -> str:
        return self.request.client.host if self.request.client else ""

    def render(self, template: str, status: int = 200, **values: Any) -> Response:
        """A page from ``templates/``, with the user, CSRF token and paths filled in."""
        return render(self.dash, self.request, template, status, session=self.session, **values)

    def audit(self, action: str, target: str | None = None, **detail: Any) -> None:
        audit.record(
            self.store, self.session.user.username, action, target, client=self.client(), **detail
        )

    def redirect(self, path: str) -> RedirectResponse:
        """See-other to a dashboard path (after a POST: the browser GETs the result)."""
        return RedirectResponse(self.base + path, status_code=303)


def render(
    dash: Dashboard, request: Request, template: str, status: int = 200, **values: Any
) -> Response:
    """Render ``template`` with the common values."""
    base = str(request.scope.get("root_path", ""))
    html = dash.env.get_template(template).render(
        base=base, path=request.url.path, zone=dash.zone.key, **values
    )
    return secured(HTMLResponse(html, status_code=status))


def secured(response: Response) -> Response:
    """Headers on every dashboard answer: no caching of payment data, no framing."""
    response.headers["Content-Security-Policy"] = CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def is_tls(request: Request) -> bool:
    """Served over TLS, here or at a proxy in front. Believing a forged header only makes
    the cookie stricter, so it is safe to trust for this one purpose."""
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


def csrf_ok(expected: str, given: object) -> bool:
    """Constant-time comparison of the session's CSRF token with the one posted."""
    return isinstance(given, str) and hmac.compare_digest(expected.encode(), given.encode())


Handler = Callable[[Ctx], Response]


def page(dash: Dashboard, role: Role = Role.VIEWER) -> Callable[[Handler], Any]:
    """Wrap a handler: a session is required (GET without one: to the login page), the
    role is checked (403), and a POST must carry the session's CSRF token (403)."""

    def decorate(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            session = await run_in_threadpool(load_session, dash.store, request.cookies.get(COOKIE))
            if session is None:
                if request.method == "GET":
                    target = request.url.path + (
                        f"?{request.url.query}" if request.url.query else ""
                    )
                    base = str(request.scope.get("root_path", ""))
                    return RedirectResponse(
                        f"{base}/login?next={quote(target, safe='')}", status_code=303
                    )
                return secured(PlainTextResponse("log in first", status_code=401))
            form: dict[str, Any] = {}
            if request.method == "POST":
                data = await request.form()
                form = {key: data.getlist(key) for key in data}
                token = (form.get("csrf") or [request.headers.get("x-csrf-token")])[0]
                if not csrf_ok(session.csrf, token):
                    return secured(
                        PlainTextResponse(
                            "refused: the form's security token is missing or stale; "
                            "reload the page and try again",
                            status_code=403,
                        )
                    )
            if not session.user.may(role):
                return render(
                    dash,
                    request,
                    "forbidden.html",
                    403,
                    session=session,
                    needed=role.value,
                )
            ctx = Ctx(request, dash, session, form)
            return await run_in_threadpool(handler, ctx)

        endpoint.__name__ = handler.__name__
        return endpoint

    return decorate


def first(form: dict[str, Any], key: str, default: str = "") -> str:
    """The first value posted for ``key``."""
    values = form.get(key) or [default]
    return str(values[0])
