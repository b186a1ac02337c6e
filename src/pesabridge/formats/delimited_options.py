"""The options of the ``delimited`` format: its column mapping, zones and value mappings."""

from __future__ import annotations

import re
from datetime import UTC, timedelta, timezone, tzinfo
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictStr,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ..model import CURRENCIES, EAT, Direction, Entry, Status

_REF_PROBLEM = "must be a column name or a 0-based column index"


def _column_ref(value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise PydanticCustomError("column", _REF_PROBLEM)
    if isinstance(value, int) and value < 0:
        raise PydanticCustomError("column", f"{value} is negative; {_REF_PROBLEM}")
    if isinstance(value, str) and not value.strip():
        raise PydanticCustomError("column", f"is empty; {_REF_PROBLEM}")
    return value


def _column_refs(value: Any) -> Any:
    if isinstance(value, list):
        if not value:
            raise PydanticCustomError("columns", "is an empty list")
        for item in value:
            _column_ref(item)
        return value
    return _column_ref(value)


ColumnRef = Annotated[int | str, BeforeValidator(_column_ref)]
"""A column: its header name, or its 0-based position."""
ColumnRefs = Annotated[int | str | list[int | str], BeforeValidator(_column_refs)]
"""One column, or several whose texts are joined with a space."""

DEFAULT_TIMEZONE = "Africa/Nairobi"

DEFAULT_DIRECTIONS: dict[str, Direction] = {
    **dict.fromkeys(("credit", "cr", "c", "in", "+"), Direction.CREDIT),
    **dict.fromkeys(("debit", "dr", "d", "out", "-"), Direction.DEBIT),
}
DEFAULT_STATUSES: dict[str, Status] = {
    **dict.fromkeys(
        ("completed", "complete", "success", "successful", "succeeded", "ok"), Status.COMPLETED
    ),
    **dict.fromkeys(
        ("failed", "failure", "declined", "cancelled", "canceled", "rejected", "error"),
        Status.FAILED,
    ),
    "reversed": Status.REVERSED,
}
ENTRY_NAMES: dict[str, Entry] = {e.value: e for e in Entry}
_OFFSET = re.compile(r"(?:UTC|GMT)?([+-])(\d{1,2})(?::?(\d{2}))?")
SURROGATE = re.compile("[\udc80-\udcff]")
_JAVA_TOKENS = (
    ("yyyy", "%Y"),
    ("yy", "%y"),
    ("MM", "%m"),
    ("dd", "%d"),
    ("HH", "%H"),
    ("hh", "%I"),
    ("mm", "%M"),
    ("ss", "%S"),
    ("a", "%p"),
)
TIME_CACHE_LIMIT = 20_000


def _problem(kind: str, message: str) -> PydanticCustomError:
    # A custom error keeps the message as written (a ValueError gets "Value error, ").
    return PydanticCustomError(kind, message)


def resolve_timezone(name: str) -> tzinfo:
    """An IANA zone (``Africa/Nairobi``), ``UTC``, or a fixed offset (``+03:00``, ``UTC+3``).

    Raises :class:`ValueError` with a message for a person.
    """
    text = name.strip()
    if text.upper() in ("UTC", "Z", "GMT", "ETC/UTC"):
        return UTC
    match = _OFFSET.fullmatch(text.upper().replace(" ", ""))
    if match:
        hours, minutes = int(match[2]), int(match[3] or 0)
        if hours > 14 or minutes > 59:
            raise ValueError(f"{name!r} is not a UTC offset between -14:00 and +14:00")
        offset = timedelta(hours=hours, minutes=minutes)
        return timezone(-offset if match[1] == "-" else offset)
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        if text == DEFAULT_TIMEZONE:
            return EAT  # no tz database on this host; Nairobi has been UTC+3 since 1960
        raise ValueError(
            f"{name!r} is not an IANA time zone (Africa/Nairobi) or an offset (+03:00)"
        ) from None


def _strptime_hint(pattern: str) -> str:
    translated = pattern
    for token, directive in _JAVA_TOKENS:
        translated = translated.replace(token, directive)
    return translated


def lowered(values: dict[str, Any] | None) -> dict[str, Any]:
    return {k.strip().casefold(): v for k, v in (values or {}).items()}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Columns(_Strict):
    """Which column holds each canonical field (header name or 0-based index)."""

    receipt: ColumnRef
    time: ColumnRefs
    """One column, or several joined with a space (a ``Date`` and a ``Time`` column)."""
    amount: ColumnRef | None = None
    """Signed amount: negative is a debit."""
    credit: ColumnRef | None = None
    debit: ColumnRef | None = None
    direction: ColumnRef | None = None
    entry: ColumnRef | None = None
    reference: ColumnRef | None = None
    msisdn: ColumnRef | None = None
    name: ColumnRefs | None = None
    """One column, or name parts joined with a space (first, middle, last)."""
    balance: ColumnRef | None = None
    currency: ColumnRef | None = None
    status: ColumnRef | None = None
    related_receipt: ColumnRef | None = None

    @model_validator(mode="after")
    def _amount_columns(self) -> Columns:
        pair = (self.credit is not None, self.debit is not None)
        if self.amount is None and pair != (True, True):
            if any(pair):
                missing = "debit" if self.credit is not None else "credit"
                raise _problem("columns", f"{missing} is required with a credit/debit pair")
            raise _problem("columns", "give amount (signed), or credit and debit")
        if self.amount is not None and any(pair):
            raise _problem("columns", "give amount, or credit and debit, not both")
        if self.direction is not None and self.amount is None:
            raise _problem(
                "columns", "direction comes from the credit/debit columns; remove direction"
            )
        return self

    def references(self) -> dict[str, list[int | str]]:
        """Every mapped field and its column(s)."""
        found: dict[str, list[int | str]] = {}
        for key in type(self).model_fields:
            value = getattr(self, key)
            if value is not None:
                found[key] = list(value) if isinstance(value, list) else [value]
        return found


class DelimitedOptions(_Strict):
    """``format_options`` of the ``delimited`` format."""

    provider: Annotated[StrictStr, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$", max_length=40)]
    """Canonical provider name (``airtel``, ``equity``): part of every identity."""
    account: StrictStr | None = None
    currency: StrictStr | None = None
    """Fixed currency; with ``columns.currency`` it is used for blank cells."""
    entry: Entry | None = None
    """Fixed entry; otherwise ``columns.entry``, else payment (credit) / payout (debit)."""
    delimiter: str = ","
    quotechar: str | None = '"'
    encoding: Literal["auto", "utf-8", "cp1252"] = "auto"
    decimal_separator: Literal[".", ","] = "."
    header_contains: StrictStr | None = None
    header_line: Annotated[int, Field(ge=1)] | None = None
    header: bool = True
    """``false``: the file has no header row; columns are given by index."""
    skip_lines: Annotated[int, Field(ge=0)] = 0
    skip_footer_prefixes: list[Annotated[StrictStr, Field(min_length=1)]] = []
    time_format: StrictStr | None = None
    """strptime pattern (``%d/%m/%Y %H:%M``); ISO 8601 when omitted."""
    timezone: StrictStr = DEFAULT_TIMEZONE
    direction_values: dict[str, Direction] | None = None
    entry_values: dict[str, Entry] | None = None
    status_values: dict[str, Status] | None = None
    columns: Columns

    @field_validator("account", "currency", mode="before")
    @classmethod
    def _quoted(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise _problem(
                "quoted", 'must be text; quote it in YAML so leading zeros survive ("0123")'
            )
        return value

    @field_validator("currency")
    @classmethod
    def _currency(cls, value: str | None) -> str | None:
        if value is None:
            return None
        code = value.strip().upper()
        if code not in CURRENCIES:
            raise _problem("currency", f"{value!r} is not a known ISO 4217 code")
        return code

    @field_validator("delimiter", mode="before")
    @classmethod
    def _delimiter(cls, value: Any) -> Any:
        if isinstance(value, str) and value.lower() in ("tab", "\\t"):
            return "\t"
        if not isinstance(value, str) or len(value) != 1 or value in "\r\n":
            raise _problem("delimiter", 'must be one character (",", ";", "|" or tab)')
        return value

    @field_validator("quotechar")
    @classmethod
    def _quotechar(cls, value: str | None) -> str | None:
        if value is not None and len(value) != 1:
            raise _problem("quotechar", "must be one character, or null for no quoting")
        return value

    @field_validator("encoding", mode="before")
    @classmethod
    def _encoding(cls, value: Any) -> Any:
        aliases = {"utf8": "utf-8", "utf-8-sig": "utf-8", "windows-1252": "cp1252"}
        if isinstance(value, str):
            return aliases.get(value.strip().lower(), value.strip().lower())
        return value

    @field_validator("time_format")
    @classmethod
    def _time_format(cls, value: str | None) -> str | None:
        if value is not None and "%" not in value:
            raise _problem(
                "time_format",
                f"{value!r} is not a strptime pattern; did you mean {_strptime_hint(value)!r}?",
            )
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            resolve_timezone(value)
        except ValueError as exc:
            raise _problem("timezone", str(exc)) from None
        return value

    @field_validator("direction_values", "entry_values", "status_values", mode="before")
    @classmethod
    def _value_keys(cls, value: Any) -> Any:
        # YAML reads an unquoted code (0: completed) as a number; cell values are text.
        if isinstance(value, dict):
            return {
                str(k) if isinstance(k, int) and not isinstance(k, bool) else k: v
                for k, v in value.items()
            }
        return value

    @model_validator(mode="after")
    def _consistent(self) -> DelimitedOptions:
        if self.currency is None and self.columns.currency is None:
            raise _problem("currency", "currency: required (a code like KES, or columns.currency)")
        if self.header_contains is not None and self.header_line is not None:
            raise _problem("header", "give header_contains or header_line, not both")
        if not self.header:
            if self.header_contains is not None or self.header_line is not None:
                raise _problem("header", "header: false cannot have header_contains/header_line")
            for key, refs in self.columns.references().items():
                named = [r for r in refs if isinstance(r, str)]
                if named:
                    raise _problem(
                        "header",
                        f"columns.{key}: {named[0]!r} is a name but the file has no header "
                        "row (header: false); give its 0-based index",
                    )
        for key in ("direction", "entry", "status"):
            if getattr(self, f"{key}_values") is not None and getattr(self.columns, key) is None:
                raise _problem("values", f"{key}_values: given without columns.{key}")
        if self.quotechar is not None and self.quotechar == self.delimiter:
            raise _problem("quotechar", "quotechar: must differ from the delimiter")
        return self
