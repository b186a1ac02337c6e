"""Transaction search for the Transactions page and its CSV export.

Each filter is built to use an index from migration 0008 (or the identity's unique
index for receipts), so the common searches stay fast over millions of rows: receipt
(exact), phone (the last four digits' expression index, then the rest of the suffix),
reference (case-folded, exact) and date range (``occurred_at``). Name and amount filters
only narrow what the others found, or scan.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta, tzinfo
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, Select, and_, exists, false, func, or_, select

from ..model.currency import CURRENCIES, minor_units
from ..store.schema import MSISDN_LAST4 as msisdn_last4
from ..store.schema import REFERENCE_FOLDED as reference_folded
from ..store.schema import deliveries, transactions

PAGE_SIZE = 50
EXPORT_MAX = 100_000
STATES = ("delivered", "pending", "failed", "dead", "unrouted")
SORTS = {"occurred_at", "amount", "receipt"}
MASKED_SUFFIX = 4
"""Digits a masked view shows at the end of a number: the most a masked role may search."""


@dataclass
class Filters:
    """A search as the form gives it, checked."""

    receipt: str = ""
    phone: str = ""
    reference: str = ""
    name: str = ""
    amount_min: Decimal | None = None
    amount_max: Decimal | None = None
    date_from: date | None = None
    date_to: date | None = None
    provider: str = ""
    account: str = ""
    state: str = ""
    sort: str = "occurred_at"
    direction: str = "desc"
    page: int = 1
    errors: dict[str, str] = field(default_factory=dict)
    """Problems by form field; a search with errors is not run."""

    def query_string(self, **changes: Any) -> str:
        """The form's fields as a URL query (for paging, sorting and export links)."""
        from urllib.parse import urlencode

        values = {
            "receipt": self.receipt,
            "phone": self.phone,
            "reference": self.reference,
            "name": self.name,
            "amount_min": "" if self.amount_min is None else str(self.amount_min),
            "amount_max": "" if self.amount_max is None else str(self.amount_max),
            "date_from": self.date_from.isoformat() if self.date_from else "",
            "date_to": self.date_to.isoformat() if self.date_to else "",
            "provider": self.provider,
            "account": self.account,
            "state": self.state,
            "sort": self.sort,
            "direction": self.direction,
        }
        values.update({k: str(v) for k, v in changes.items()})
        return urlencode({k: v for k, v in values.items() if v not in ("", "1") or k == "page"})


def parse_filters(params: Mapping[str, str], *, unmasked: bool) -> Filters:
    """Filters from query parameters; problems are kept per field, never raised."""
    f = Filters()
    text = {k: (params.get(k) or "").strip() for k in params}
    f.receipt = text.get("receipt", "")[:64]
    f.reference = text.get("reference", "")[:200]
    f.name = text.get("name", "")[:200]
    f.provider = text.get("provider", "")[:32]
    f.account = text.get("account", "")[:64]
    f.phone = text.get("phone", "")[:32]
    if f.phone:
        digits = phone_digits(f.phone)
        if not digits:
            f.errors["phone"] = "give digits: a full number or its last digits"
        elif not unmasked and len(digits) > MASKED_SUFFIX:
            f.errors["phone"] = (
                f"your role sees numbers masked: search by the last {MASKED_SUFFIX} digits"
            )
    for name in ("amount_min", "amount_max"):
        raw = text.get(name, "")
        if raw:
            try:
                value = Decimal(raw.replace(",", ""))
                if not value.is_finite() or value < 0:
                    raise InvalidOperation
                setattr(f, name, value)
            except InvalidOperation:
                f.errors[name] = "give an amount such as 1500 or 1500.50"
    for name in ("date_from", "date_to"):
        raw = text.get(name, "")
        if raw:
            try:
                setattr(f, name, date.fromisoformat(raw))
            except ValueError:
                f.errors[name] = "give a date as YYYY-MM-DD"
    state = text.get("state", "")
    if state and state not in STATES:
        f.errors["state"] = "unknown state"
    f.state = state
    f.sort = text.get("sort", "") if text.get("sort", "") in SORTS else "occurred_at"
    f.direction = "asc" if text.get("direction") == "asc" else "desc"
    try:
        f.page = max(1, min(int(text.get("page", "1") or "1"), 10_000))
    except ValueError:
        f.page = 1
    return f


def phone_digits(value: str) -> str:
    """The digits to match at the end of stored numbers. A full national number loses its
    trunk ``0`` (and an international ``00``): ``0712 345 678`` and ``+254712345678`` both
    end in ``712345678``. A few last digits are kept as typed: ``0475`` is a suffix."""
    digits = re.sub(r"\D", "", value)
    return digits.lstrip("0") if len(digits) >= 9 else digits


def _conditions(f: Filters, zone: tzinfo) -> list[Any]:
    t = transactions.c
    where: list[Any] = []
    if f.receipt:
        where.append(t.receipt.in_(sorted({f.receipt, f.receipt.upper()})))
    if f.phone:
        digits = phone_digits(f.phone)
        if len(digits) >= 4:
            where.append(msisdn_last4 == digits[-4:])
        if len(digits) != 4:
            where.append(t.msisdn.like(f"%{digits}"))
    if f.reference:
        where.append(reference_folded == f.reference.lower())
    if f.name:
        escaped = f.name.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        where.append(func.lower(t.name).like(f"%{escaped}%", escape="\\"))
    if f.amount_min is not None or f.amount_max is not None:
        where.append(_amount_condition(f.amount_min, f.amount_max))
    if f.date_from:
        where.append(t.occurred_at >= datetime.combine(f.date_from, time(), zone))
    if f.date_to:
        end = datetime.combine(f.date_to + timedelta(days=1), time(), zone)
        where.append(t.occurred_at < end)
    if f.provider:
        where.append(t.provider == f.provider)
    if f.account:
        where.append(t.account == f.account)
    if f.state:
        where.append(_state_condition(f.state))
    return where


def _amount_condition(low: Decimal | None, high: Decimal | None) -> Any:
    # Amounts are stored in minor units, so the bounds depend on each currency's exponent.
    by_exponent: dict[int, list[str]] = {}
    for code in CURRENCIES:
        by_exponent.setdefault(minor_units(code), []).append(code)
    t = transactions.c
    branches = []
    for exponent, codes in sorted(by_exponent.items()):
        parts: list[Any] = [t.currency.in_(codes)]
        if low is not None:
            parts.append(
                t.amount_minor >= int(low.scaleb(exponent).to_integral_value(ROUND_CEILING))
            )
        if high is not None:
            parts.append(
                t.amount_minor <= int(high.scaleb(exponent).to_integral_value(ROUND_FLOOR))
            )
        branches.append(and_(*parts))
    return or_(*branches) if branches else false()


def _state_condition(state: str) -> Any:
    d = deliveries.c
    mine = d.transaction_id == transactions.c.id
    if state == "unrouted":
        return ~exists().where(mine)
    if state == "failed":
        return exists().where(mine, d.state == "pending", d.last_error.is_not(None))
    if state == "pending":
        return exists().where(mine, d.state.in_(("pending", "in_flight")))
    return exists().where(mine, d.state == state)


def _query(f: Filters, zone: tzinfo) -> Select[Any]:
    t = transactions.c
    column = {"amount": t.amount_minor, "receipt": t.receipt}.get(f.sort, t.occurred_at)
    order = [column.asc(), t.id.asc()] if f.direction == "asc" else [column.desc(), t.id.desc()]
    return select(transactions).where(*_conditions(f, zone)).order_by(*order)


def search(conn: Connection, f: Filters, zone: tzinfo) -> tuple[list[dict[str, Any]], bool]:
    """One page of results, and whether there is a next page (no total is counted: a
    count over a wide date range would cost more than the page itself)."""
    offset = (f.page - 1) * PAGE_SIZE
    rows = conn.execute(_query(f, zone).limit(PAGE_SIZE + 1).offset(offset)).mappings().all()
    return [dict(r) for r in rows[:PAGE_SIZE]], len(rows) > PAGE_SIZE


def export_rows(conn: Connection, f: Filters, zone: tzinfo) -> Iterator[dict[str, Any]]:
    """Every result (up to :data:`EXPORT_MAX`), in the page's order."""
    result = conn.execute(_query(f, zone).limit(EXPORT_MAX)).mappings()
    for row in result:
        yield dict(row)


def delivery_states(conn: Connection, ids: list[int]) -> dict[int, list[tuple[str, str]]]:
    """``(sink, state)`` per transaction id, for the result table's state column."""
    if not ids:
        return {}
    d = deliveries.c
    found: dict[int, list[tuple[str, str]]] = {}
    rows = conn.execute(
        select(d.transaction_id, d.sink, d.state, d.last_error).where(d.transaction_id.in_(ids))
    )
    for tid, sink, state, error in rows:
        shown = "failed" if state == "pending" and error else state
        found.setdefault(tid, []).append((sink, shown))
    return found
