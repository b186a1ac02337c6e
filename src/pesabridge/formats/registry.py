"""The one place parsers are registered. A new provider format is one line here."""

from __future__ import annotations

import importlib

from ..errors import UnknownFormat
from .base import Parser

# --format name -> "module:Class", imported on first use so a CLI start stays fast.
_PARSERS: dict[str, str] = {
    "mpesa-statement": "pesabridge.formats.mpesa_statement:MpesaStatementParser",
    "daraja-c2b": "pesabridge.formats.daraja_c2b:DarajaC2BParser",
}

_cache: dict[str, Parser] = {}


def format_names() -> list[str]:
    """Every registered ``--format`` name (without ``auto``)."""
    return list(_PARSERS)


def get_parser(name: str) -> Parser:
    """The parser registered under ``name``; raises :class:`UnknownFormat`."""
    if name not in _cache:
        try:
            target = _PARSERS[name]
        except KeyError:
            known = ", ".join([*_PARSERS, "auto"])
            raise UnknownFormat(f"unknown format {name!r}; known: {known}") from None
        module_name, _, class_name = target.partition(":")
        parser_class = getattr(importlib.import_module(module_name), class_name)
        _cache[name] = parser_class()
    return _cache[name]


def detect_format(head: bytes, filename: str) -> Parser | None:
    """The first registered parser whose ``sniff`` accepts these bytes, if any."""
    for name in _PARSERS:
        parser = get_parser(name)
        if parser.sniff(head, filename):
            return parser
    return None
