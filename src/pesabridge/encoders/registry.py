"""The one place encoders are registered (``--to`` names and sink ``encoder:`` values)."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from ..errors import UnknownFormat

# name -> "module:Class". A class takes its options as keyword arguments (validated by
# the class), and implements MessageEncoder, StatementEncoder, or both.
ENCODERS: dict[str, str] = {
    "json": "pesabridge.encoders.json:JsonEncoder",
    "csv": "pesabridge.encoders.csv:CsvEncoder",
    "template": "pesabridge.encoders.template:TemplateEncoder",
    "iso8583": "pesabridge.encoders.iso8583.encoder:Iso8583Encoder",
    "camt054": "pesabridge.encoders.camt:Camt054Encoder",
    "camt053": "pesabridge.encoders.camt:Camt053Encoder",
    "mt940": "pesabridge.encoders.mt940:Mt940Encoder",
    "ofx": "pesabridge.encoders.ofx:OfxEncoder",
}


def encoder_names() -> list[str]:
    """Every registered encoder name."""
    return list(ENCODERS)


def get_encoder(name: str, options: Mapping[str, Any] | None = None) -> Any:
    """An encoder instance for ``name`` configured with ``options``."""
    try:
        target = ENCODERS[name]
    except KeyError:
        raise UnknownFormat(f"unknown encoder {name!r}; known: {', '.join(ENCODERS)}") from None
    module_name, _, class_name = target.partition(":")
    encoder_class = getattr(importlib.import_module(module_name), class_name)
    return encoder_class(**dict(options or {}))
