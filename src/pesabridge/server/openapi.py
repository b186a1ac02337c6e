"""The OpenAPI document of the running app: callback sources, health and metrics.

Built by hand from what each callback source declares (``openapi()``), so it describes
exactly the routes a config makes, path tokens included as path parameters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .. import __version__
from ..sources.base import CallbackSource


def openapi_document(sources: Sequence[CallbackSource]) -> dict[str, Any]:
    """The OpenAPI 3.0 document for ``sources`` plus ``/healthz`` and ``/metrics``."""
    paths: dict[str, Any] = {
        "/healthz": {
            "get": {
                "summary": "Health: the database answers",
                "operationId": "healthz",
                "responses": {
                    "200": {"description": "Healthy"},
                    "503": {"description": "The database does not answer"},
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "operationId": "metrics",
                "responses": {"200": {"description": "Metrics in the text format"}},
            }
        },
    }
    for source in sources:
        describe = getattr(source, "openapi", None)
        if describe is not None:
            paths.update(describe())
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "pesabridge callbacks",
            "version": __version__,
            "description": "Mobile-money provider callbacks, each posted exactly once.",
        },
        "paths": paths,
    }
