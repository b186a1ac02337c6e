"""The web dashboard: server-rendered pages over the same store queries the CLI uses.

Mounted under ``/ui`` by :func:`pesabridge.server.build_app`, so ``pesabridge run`` and
``pesabridge serve`` serve it; ``/`` redirects there. Every page needs a logged-in user
(``pesabridge users add``); see docs/dashboard.md.
"""

from __future__ import annotations

import importlib

from starlette.requests import Request
from starlette.responses import RedirectResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from ..config import Config
from ..store import Store
from . import pages
from .web import HERE, Dashboard

PREFIX = "/ui"


def dashboard_routes(store: Store, config: Config | None = None) -> list[BaseRoute]:
    """The dashboard's routes, to add to the server's: ``/ui/...`` and a redirect at ``/``."""
    dash = Dashboard(store, config)
    routes: list[BaseRoute] = [
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    # Page modules looked up by name: importing their names here would hide the data
    # modules of the same name (pesabridge.dashboard.overview, .reconciliation).
    for name in (
        "auth", "overview", "transactions", "failures", "files", "reconciliation", "settings"
    ):  # fmt: skip
        routes.extend(importlib.import_module(f"{pages.__name__}.{name}").routes(dash))

    async def root(_request: Request) -> RedirectResponse:
        return RedirectResponse(PREFIX + "/", status_code=307)

    return [Mount(PREFIX, routes=routes), Route("/", root, methods=["GET"])]


__all__ = ["PREFIX", "Dashboard", "dashboard_routes"]
