"""Sinks: the back offices transactions are posted to."""

from .base import Delivered, Sink

__all__ = ["Delivered", "Sink"]
