"""The HTTP side: provider callbacks, health and metrics."""

from .app import build_app

__all__ = ["build_app"]
