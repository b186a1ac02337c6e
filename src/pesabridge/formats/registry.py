"""The one place parsers are registered. A new provider format is one line here.

A parser class may take options (``format_options:`` in a source's config): it declares
``Options: ClassVar[type[pydantic.BaseModel]]`` and is constructed with the validated
model, ``ParserClass(options)``. Parsers without ``Options`` are constructed without
arguments and shared; a parser with options is built anew for each call.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError, UnknownFormat
from .base import Parser

# --format name -> "module:Class", imported on first use so a CLI start stays fast.
_PARSERS: dict[str, str] = {
    "mpesa-statement": "pesabridge.formats.mpesa_statement:MpesaStatementParser",
    "daraja-c2b": "pesabridge.formats.daraja_c2b:DarajaC2BParser",
    "daraja-stk": "pesabridge.formats.daraja_stk:DarajaSTKParser",
    "daraja-result": "pesabridge.formats.daraja_result:DarajaResultParser",
    "kopokopo-webhook": "pesabridge.formats.kopokopo:KopoKopoWebhookParser",
    "kopokopo-legacy": "pesabridge.formats.kopokopo:KopoKopoLegacyParser",
    "airtel-callback": "pesabridge.formats.airtel:AirtelCallbackParser",
    "mtn-momo-callback": "pesabridge.formats.mtn:MtnMomoCallbackParser",
    "jsonl": "pesabridge.formats.jsonl:JsonLinesParser",
    "delimited": "pesabridge.formats.delimited:DelimitedParser",
}

_cache: dict[str, Parser] = {}
_needs_options: set[str] = set()


class FormatOptionsError(ConfigError, UnknownFormat):
    """``format_options`` that the named format refuses; each problem names its path.

    A :class:`~pesabridge.errors.ConfigError` (the problems are configuration problems)
    and an :class:`~pesabridge.errors.UnknownFormat` (no usable parser could be made), so
    callers that already handle an unknown format handle this too.
    """


def format_names() -> list[str]:
    """Every registered ``--format`` name (without ``auto``)."""
    return list(_PARSERS)


def _parser_class(name: str) -> type[Any]:
    try:
        target = _PARSERS[name]
    except KeyError:
        known = ", ".join([*_PARSERS, "auto"])
        raise UnknownFormat(f"unknown format {name!r}; known: {known}") from None
    module_name, _, class_name = target.partition(":")
    parser_class: type[Any] = getattr(importlib.import_module(module_name), class_name)
    return parser_class


def options_model(name: str) -> type[BaseModel] | None:
    """The options model of format ``name``, or ``None`` when it takes no options."""
    model: type[BaseModel] | None = getattr(_parser_class(name), "Options", None)
    return model


def get_parser(
    name: str,
    options: Mapping[str, Any] | None = None,
    *,
    where: str = "format_options",
) -> Parser:
    """The parser registered under ``name``, configured with ``options``.

    Raises :class:`UnknownFormat` for an unknown name, and :class:`FormatOptionsError`
    (also a :class:`ConfigError`) listing every problem as ``where.path: message`` when
    the options are not valid for this format, when a format that takes none is given
    some, or when a format needs options and none are given. ``where`` is the options'
    place in the configuration (``sources[2].format_options``).
    """
    if not options and name in _cache:
        return _cache[name]
    parser_class = _parser_class(name)
    model: type[BaseModel] | None = getattr(parser_class, "Options", None)
    if model is None:
        if options:
            keys = ", ".join(str(k) for k in options)
            raise FormatOptionsError([f"{where}: format {name!r} takes no options (given: {keys})"])
        parser: Parser = parser_class()
        _cache[name] = parser
        return parser
    if options is not None and not isinstance(options, Mapping):
        raise FormatOptionsError([f"{where}: must be a mapping, not {type(options).__name__}"])
    try:
        validated = model.model_validate(dict(options or {}))
    except ValidationError as exc:
        from ..config import validation_problems  # only on the error path: config is heavy

        raise FormatOptionsError(validation_problems(exc, where)) from None
    parser = parser_class(validated)
    if not options:
        _cache[name] = parser  # every option has a default: the instance can be shared
    return parser


def detect_format(head: bytes, filename: str) -> Parser | None:
    """The first registered parser whose ``sniff`` accepts these bytes, if any.

    A format that cannot work without options (``delimited``) is never detected.
    """
    for name in _PARSERS:
        if name in _needs_options:
            continue
        try:
            parser = get_parser(name)
        except ConfigError:
            _needs_options.add(name)
            continue
        if parser.sniff(head, filename):
            return parser
    return None
