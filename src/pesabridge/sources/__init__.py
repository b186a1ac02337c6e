"""Sources: where transactions come from (folders, file servers, provider callbacks)."""

from .base import CallbackSource, PollingSource, SourceContext

__all__ = ["CallbackSource", "PollingSource", "SourceContext"]
