"""The one place source and sink types are registered.

A new provider's callback, a new transport or a new back office is a module with a class
behind the interfaces of :mod:`pesabridge.sources.base` or :mod:`pesabridge.sinks.base`,
and one line here.
"""

from __future__ import annotations

import importlib
from typing import Any

from pydantic import BaseModel

SOURCES: dict[str, str] = {
    "folder": "pesabridge.sources.folder:FolderSource",
    "ftp": "pesabridge.sources.ftp:FtpSource",
    "ftps": "pesabridge.sources.ftp:FtpsSource",
    "sftp": "pesabridge.sources.sftp:SftpSource",
    "daraja-c2b": "pesabridge.sources.daraja:DarajaC2BSource",
    "daraja-stk": "pesabridge.sources.callback.providers:DarajaStkSource",
    "daraja-result": "pesabridge.sources.callback.providers:DarajaResultSource",
    "kopokopo": "pesabridge.sources.callback.providers:KopoKopoSource",
    "kopokopo-legacy": "pesabridge.sources.callback.providers:KopoKopoLegacySource",
    "airtel": "pesabridge.sources.callback.providers:AirtelSource",
    "mtn-momo": "pesabridge.sources.callback.providers:MtnMomoSource",
}

SINKS: dict[str, str] = {
    "http": "pesabridge.sinks.http:HttpSink",
    "sql": "pesabridge.sinks.sql:SqlSink",
    "file-drop": "pesabridge.sinks.filedrop:FileDropSink",
    "iso8583": "pesabridge.sinks.iso8583:Iso8583Sink",
}


def _load(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module_name), attribute)


def source_class(kind: str) -> Any:
    """The class implementing source type ``kind``, or None."""
    return _load(SOURCES[kind]) if kind in SOURCES else None


def sink_class(kind: str) -> Any:
    """The class implementing sink type ``kind``, or None."""
    return _load(SINKS[kind]) if kind in SINKS else None


def source_config_model(kind: str) -> type[BaseModel] | None:
    """The pydantic model validating a source section of type ``kind``."""
    cls = source_class(kind)
    return None if cls is None else cls.Config


def sink_config_model(kind: str) -> type[BaseModel] | None:
    """The pydantic model validating a sink section of type ``kind``."""
    cls = sink_class(kind)
    return None if cls is None else cls.Config
