"""The web dashboard: server-rendered pages over the same store queries the CLI uses.

Mounted under ``/ui`` by :func:`pesabridge.server.build_app`, so ``pesabridge run`` and
``pesabridge serve`` serve it; ``/`` redirects there. Every page needs a logged-in user
(``pesabridge users add``); see docs/dashboard.md.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..config import Config
from ..store import Store
from .pages import auth, failures, files, overview, reconciliation, settings, transactions
from .web import HERE, Dashboard

PREFIX = "/ui"


def dashboard_routes(store: Store, config: Config | None = None) -> list[BaseRoute]:
    """The dashboard's routes, to add to the server's: ``/ui/...`` and a redirect at ``/``."""
    dash = Dashboard(store, config)
    pages: list[BaseRoute] = [
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    for module in (auth, overview, transactions, failures, files, reconciliation, settings):
        pages.extend(module.routes(dash))

    async def root(_request: Request) -> RedirectResponse:
        return RedirectResponse(PREFIX + "/", status_code=307)

    return [Mount(PREFIX, routes=pages), Route("/", root, methods=["GET"])]


__all__ = ["PREFIX", "Dashboard", "dashboard_routes"]
