"""The ISO 8583 host sink: framing, connections, and the advice/reversal state machine."""

from .config import Iso8583SinkConfig
from .sink import Iso8583Sink

__all__ = ["Iso8583Sink", "Iso8583SinkConfig"]
