"""Parsers: provider payloads and statement files into canonical transactions.

Every format is registered once, in :mod:`pesabridge.formats.registry`::

    from pesabridge.formats import get_parser
    parser = get_parser("mpesa-statement")
    with open(path, "rb") as f:
        for item in parser.parse(f, path.name): ...
"""

from .base import (
    CallbackParser,
    FailedAttempt,
    Observation,
    ParseItem,
    Parser,
    Reject,
    StatementHeader,
)
from .registry import detect_format, format_names, get_parser

__all__ = [
    "CallbackParser",
    "FailedAttempt",
    "Observation",
    "ParseItem",
    "Parser",
    "Reject",
    "StatementHeader",
    "detect_format",
    "format_names",
    "get_parser",
]
