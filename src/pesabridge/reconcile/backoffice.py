"""The back office's own record of what it posted: a CSV export or an HTTP endpoint.

Read through a configured column mapping (:class:`~.settings.BackofficeSettings`). A row
that cannot be read is not fatal: it is reported with its file, line and field, and the
other rows are compared.
"""

from __future__ import annotations

import csv
import io
import json
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from .settings import BACKOFFICE_FIELDS, BackofficeSettings


class BackofficeError(Exception):
    """The record could not be read at all (missing file, HTTP failure, no amount column)."""


@dataclass(frozen=True, slots=True)
class Posting:
    """One line of the back office's record."""

    line: int
    """1-based data row (CSV: the physical line; JSON: the item's position)."""
    amount_minor: int
    receipt: str | None = None
    document: str | None = None
    key: str | None = None
    at: datetime | None = None
    reference: str | None = None
    counterparty: str | None = None
    entry: str | None = None


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A row of the record that could not be read."""

    source: str
    line: int
    field: str | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}"
        return f"{where}: {self.field}: {self.reason}" if self.field else f"{where}: {self.reason}"


def load_file(
    path: Path, settings: BackofficeSettings, zone: tzinfo, minor_digits: int
) -> tuple[list[Posting], list[Unreadable]]:
    """Read a CSV export (or a JSON list, by its ``.json`` suffix)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BackofficeError(f"{path}: cannot read: {exc.strerror}") from None
    return parse(data, path.name, settings, zone, minor_digits, json_body=path.suffix == ".json")


def fetch(
    settings: BackofficeSettings, zone: tzinfo, minor_digits: int, *, timeout: float = 30.0
) -> tuple[list[Posting], list[Unreadable]]:
    """GET ``settings.url``: CSV, or JSON (a list, or an object with the list under
    ``settings.items``)."""
    if not settings.url:
        raise BackofficeError("the back office has no url configured")
    if not settings.url.startswith(("http://", "https://")):
        raise BackofficeError(f"{settings.url}: the back office's url must be http or https")
    # the scheme is checked above: urllib's file: and ftp: handlers are never reached
    request = urllib.request.Request(settings.url, headers=dict(settings.headers))  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            body = response.read()
            kind = response.headers.get("Content-Type", "")
    except OSError as exc:
        raise BackofficeError(f"{settings.url}: {exc}") from None
    return parse(body, settings.url, settings, zone, minor_digits, json_body="json" in kind)


def parse(
    data: bytes,
    source: str,
    settings: BackofficeSettings,
    zone: tzinfo,
    minor_digits: int,
    *,
    json_body: bool,
) -> tuple[list[Posting], list[Unreadable]]:
    """The postings in ``data`` (CSV, or JSON when ``json_body``)."""
    columns = {name: settings.columns.get(name, name) for name in BACKOFFICE_FIELDS}
    records: Iterable[tuple[int, Mapping[str, Any]]]
    if json_body:
        try:
            document = json.loads(data)
        except ValueError as exc:
            raise BackofficeError(f"{source}: not JSON: {exc}") from None
        if isinstance(document, dict) and settings.items:
            document = document.get(settings.items)
        if not isinstance(document, list):
            where = f"under {settings.items!r}" if settings.items else "at the top"
            raise BackofficeError(f"{source}: expected a JSON list of postings {where}")
        records = enumerate(document, start=1)
    else:
        text = data.decode("utf-8-sig", errors="replace")
        reader = csv.DictReader(io.StringIO(text), delimiter=settings.delimiter)
        if reader.fieldnames is None or columns["amount"] not in reader.fieldnames:
            raise BackofficeError(
                f"{source}: no {columns['amount']!r} column (the amount); "
                "map it with backoffice.columns.amount"
            )
        records = ((reader.line_num, row) for row in reader)
    postings: list[Posting] = []
    unreadable: list[Unreadable] = []
    for line, record in records:
        if not isinstance(record, Mapping):
            unreadable.append(Unreadable(source, line, None, "not an object"))
            continue
        try:
            postings.append(_posting(line, record, columns, settings, zone, minor_digits))
        except _Bad as bad:
            unreadable.append(Unreadable(source, line, bad.field, bad.reason))
    return postings, unreadable


class _Bad(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def _text(record: Mapping[str, Any], column: str) -> str | None:
    value = record.get(column)
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _posting(
    line: int,
    record: Mapping[str, Any],
    columns: Mapping[str, str],
    settings: BackofficeSettings,
    zone: tzinfo,
    minor_digits: int,
) -> Posting:
    amount_column = columns["amount"]
    raw_amount = _text(record, amount_column)
    if raw_amount is None:
        raise _Bad(amount_column, "is empty")
    try:
        amount = Decimal(raw_amount.replace(",", ""))
    except InvalidOperation:
        raise _Bad(amount_column, f"{raw_amount!r} is not a number") from None
    minor = amount if settings.amount_in_minor_units else amount.scaleb(minor_digits)
    if minor != minor.to_integral_value():
        raise _Bad(amount_column, f"{raw_amount!r} has more than {minor_digits} decimals")
    at = None
    time_column = columns["time"]
    raw_time = _text(record, time_column)
    if raw_time is not None:
        try:
            at = (
                datetime.strptime(raw_time, settings.time_format)
                if settings.time_format
                else datetime.fromisoformat(raw_time.replace("Z", "+00:00"))
            )
        except ValueError:
            wanted = settings.time_format or "ISO 8601"
            raise _Bad(time_column, f"{raw_time!r} is not a {wanted} time") from None
        at = (at if at.tzinfo else at.replace(tzinfo=zone)).astimezone(UTC)
    return Posting(
        line=line,
        amount_minor=abs(int(minor)),
        receipt=_text(record, columns["receipt"]),
        document=_text(record, columns["document"]),
        key=_text(record, columns["key"]),
        at=at,
        reference=_text(record, columns["reference"]),
        counterparty=_text(record, columns["counterparty"]),
        entry=_text(record, columns["entry"]),
    )
