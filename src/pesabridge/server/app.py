"""The Starlette application: callback sources, ``/healthz``, ``/metrics``, ``/openapi.json``."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from ..config import Config
from ..dashboard import dashboard_routes
from ..sources.base import CallbackSource
from ..store import Store
from .fastpath import CallbackApp, fast_table
from .openapi import openapi_document


def build_app(
    store: Store, sources: Sequence[CallbackSource], config: Config | None = None
) -> Starlette:
    """An ASGI app answering every callback source's routes (callbacks on the fast path)."""

    async def healthz(_request: Request) -> JSONResponse:
        def ping() -> None:
            with store.read() as conn:
                conn.execute(text("select 1"))

        try:
            await asyncio.to_thread(ping)
        except Exception as exc:
            return JSONResponse({"status": "error", "database": type(exc).__name__}, 503)
        return JSONResponse({"status": "ok"})

    async def metrics(_request: Request) -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    document = openapi_document(sources)

    async def openapi(_request: Request) -> JSONResponse:
        return JSONResponse(document)

    routes: list[BaseRoute] = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False),
    ]
    for source in sources:
        routes.extend(source.routes())
    routes.extend(dashboard_routes(store, config))  # /ui: the web dashboard
    return CallbackApp(routes=routes, fast=fast_table(sources))
