"""User templates (Jinja2) for back offices no built-in format fits.

The template comes from a file (``template_file``) or inline (``template``). It runs in
Jinja2's sandbox (a template cannot reach Python internals or call unsafe methods) with
``StrictUndefined``: a misspelt name is an :class:`EncodeError`, not an empty string.
Autoescaping is on for ``.xml``, ``.html`` and ``.htm`` template files and off for
everything else (text, CSV, fixed-width); ``autoescape: true|false`` overrides.

What a template sees:

* per transaction (``encode``): ``txn`` (the canonical transaction: ``txn.amount``,
  ``txn.receipt``, ``txn.counterparty.name`` ...), ``t`` (the same as a dict of strings,
  as ``parse`` prints it) and ``context`` (``context.stan``, ``context.idempotency_key``);
* per statement (``encode_statement``): ``statement`` (``statement.account``,
  ``statement.opening_balance``, ``statement.closing_balance``, ``statement.entries``)
  and ``entries``.

Filters: ``minor_units`` (an amount as an integer of minor units: ``txn.amount |
minor_units(txn.currency)``), ``eat`` (a time in East Africa Time, or ``local("Africa/
Kampala")`` for another zone; both take an optional strftime format), ``mask_msisdn``
(``2547****5678``), ``money`` (exact decimal string, optional decimal point).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, model_validator

from ..model import EAT, mask_msisdn, minor_units
from ..model import Transaction as _Transaction
from .base import EncodeError, MessageContext, Statement
from .options import problem, validate_options

ESCAPED_SUFFIXES = (".xml", ".html", ".htm")


class TemplateOptions(BaseModel):
    """``encoder_options`` of the ``template`` encoder."""

    model_config = ConfigDict(extra="forbid")

    template: str | None = None
    """The template text, inline."""
    template_file: Path | None = None
    """A template file (UTF-8)."""
    autoescape: bool | None = None
    """Default: on for .xml/.html/.htm files, off otherwise."""
    media_type: str = "text/plain"

    @model_validator(mode="after")
    def _one_source(self) -> TemplateOptions:
        if (self.template is None) == (self.template_file is None):
            raise ValueError("give exactly one of template and template_file")
        return self


def _minor_units(amount: Decimal, currency: str) -> int:
    """``1500.00`` KES → ``150000``; ``5000`` UGX → ``5000``."""
    return int(amount.scaleb(minor_units(currency)))


def _in_zone(moment: datetime | None, zone: str, fmt: str | None) -> str | datetime:
    if moment is None:
        raise jinja2.UndefinedError("the transaction has no time")
    try:
        tz = EAT if zone == "EAT" else ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise jinja2.UndefinedError(f"{zone!r} is not a known time zone") from None
    local = moment.astimezone(tz)
    return local.strftime(fmt) if fmt else local


def _eat(moment: datetime | None, fmt: str | None = None) -> str | datetime:
    return _in_zone(moment, "EAT", fmt)


def _local(moment: datetime | None, zone: str, fmt: str | None = None) -> str | datetime:
    return _in_zone(moment, zone, fmt)


def _money(amount: Decimal | None, decimal_point: str = ".") -> str:
    if amount is None:
        return ""
    text = f"{amount:f}"
    return text if decimal_point == "." else text.replace(".", decimal_point)


def _mask(value: str | None) -> str:
    return mask_msisdn(value)


class TemplateEncoder:
    """A transaction or a statement through a user's Jinja2 template."""

    name: ClassVar[str] = "template"
    media_type: ClassVar[str] = "text/plain"

    def __init__(self, **options: Any) -> None:
        self.options = validate_options(TemplateOptions, options)
        source = self.options.template
        path = self.options.template_file
        if path is not None:
            try:
                source = path.read_text(encoding="utf-8")
            except OSError as exc:
                raise problem(f"template_file: cannot read {path}: {exc.strerror}") from None
        assert source is not None
        escape = self.options.autoescape
        if escape is None:
            escape = path is not None and path.suffix.lower() in ESCAPED_SUFFIXES
        self.environment = SandboxedEnvironment(
            undefined=jinja2.StrictUndefined,
            autoescape=escape,
            keep_trailing_newline=True,
        )
        self.environment.filters.update(
            minor_units=_minor_units,
            eat=_eat,
            local=_local,
            mask_msisdn=_mask,
            money=_money,
        )
        where = str(path) if path else "template"
        try:
            self.template = self.environment.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise problem(f"{where} line {exc.lineno}: {exc.message}") from None
        self._where = where

    def _render(self, receipt: str | None, **values: Any) -> bytes:
        try:
            return self.template.render(**values).encode()
        except jinja2.UndefinedError as exc:
            raise EncodeError(f"{self._where}: {exc.message}", receipt=receipt) from None
        except jinja2.TemplateError as exc:
            raise EncodeError(f"{self._where}: {exc}", receipt=receipt) from None
        except (ArithmeticError, TypeError, ValueError) as exc:
            raise EncodeError(f"{self._where}: {exc}", receipt=receipt) from None

    def encode(self, txn: _Transaction, context: MessageContext) -> bytes:
        return self._render(txn.receipt, txn=txn, t=txn.to_dict(), context=context)

    def encode_statement(self, statement: Statement) -> bytes:
        return self._render(
            statement.statement_id, statement=statement, entries=list(statement.entries)
        )
