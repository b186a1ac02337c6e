"""Sinks: the back offices transactions are posted to."""

from .base import Delivered, PreparingSink, Sink

__all__ = ["Delivered", "PreparingSink", "Sink"]
