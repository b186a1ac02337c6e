"""The canonical transaction: one immutable record per money movement."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Context, Decimal, Inexact, InvalidOperation
from enum import StrEnum
from typing import Any, TypeVar

from ..errors import InvalidValue
from .currency import CURRENCIES, minor_units, quantize
from .msisdn import MsisdnKind, classify_msisdn, mask_msisdn

_E = TypeVar("_E", bound=StrEnum)
# Quantising under this context raises instead of rounding: it is how ``Transaction.fast``
# checks minor units in one call.
_EXACT = Context(traps=[Inexact, InvalidOperation])
_MINOR: dict[str, Decimal] = {
    code: Decimal(1).scaleb(-units) for code, (_, units) in CURRENCIES.items()
}
_set = object.__setattr__


# Longest values the ledger stores (the same on every database): a longer value is refused
# at construction, so a parser rejects that row instead of a database failing the batch.
MAX_LENGTHS: dict[str, int] = {
    "provider": 32,
    "account": 64,
    "receipt": 64,
    "related_receipt": 64,
    "reference": 200,
    "counterparty.msisdn": 128,
    "counterparty.name": 200,
}


def _check_length(field_name: str, value: str | None) -> None:
    if value is not None and len(value) > MAX_LENGTHS[field_name]:
        raise InvalidValue(
            field_name, f"is {len(value)} characters; at most {MAX_LENGTHS[field_name]} are kept"
        )


class Entry(StrEnum):
    """What a statement row or callback is."""

    PAYMENT = "payment"
    CHARGE = "charge"
    PAYOUT = "payout"
    TRANSFER = "transfer"
    REVERSAL = "reversal"
    SETTLEMENT = "settlement"
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    ADJUSTMENT = "adjustment"


class Direction(StrEnum):
    """From the business's point of view."""

    CREDIT = "credit"
    DEBIT = "debit"


class Status(StrEnum):
    """The provider's outcome of the movement."""

    COMPLETED = "completed"
    FAILED = "failed"
    REVERSED = "reversed"


@dataclass(frozen=True, slots=True)
class Counterparty:
    """The other side: an MSISDN as received (plain, masked or hashed) and a name."""

    msisdn: str | None = None
    msisdn_kind: MsisdnKind | None = None
    name: str | None = None

    def __post_init__(self) -> None:
        if self.msisdn is not None:
            if not self.msisdn.strip():
                object.__setattr__(self, "msisdn", None)
            elif self.msisdn_kind is None:
                object.__setattr__(self, "msisdn_kind", classify_msisdn(self.msisdn))
        if self.msisdn is None and self.msisdn_kind is not None:
            raise InvalidValue("counterparty.msisdn_kind", "set without an msisdn")
        _check_length("counterparty.msisdn", self.msisdn)
        _check_length("counterparty.name", self.name)

    @classmethod
    def of(cls, msisdn: str | None, name: str | None) -> Counterparty | None:
        """A counterparty, or ``None`` when neither number nor name is known."""
        msisdn = msisdn.strip() if msisdn else None
        name = name.strip() if name else None
        if not msisdn and not name:
            return None
        return cls(msisdn=msisdn or None, name=name or None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "msisdn": self.msisdn,
            "msisdn_kind": str(self.msisdn_kind) if self.msisdn_kind else None,
            "name": self.name,
        }

    def masked(self) -> str:
        """The counterparty as logs may show it."""
        parts = [mask_msisdn(self.msisdn), self.name or ""]
        return " ".join(p for p in parts if p)


Identity = tuple[str, str, str, str]
"""``(provider, account, receipt, entry)``; an unknown account is the empty string."""


@dataclass(frozen=True, slots=True)
class Transaction:
    """A money movement as a provider reported it.

    Amounts are ``Decimal`` with exactly the currency's minor units and never negative
    (``direction`` carries the sign); ``occurred_at`` is timezone-aware and normalised to
    UTC. Invalid values raise :class:`~pesabridge.errors.InvalidValue` naming the field.
    """

    provider: str
    account: str | None
    receipt: str
    entry: Entry
    direction: Direction
    amount: Decimal
    currency: str
    occurred_at: datetime | None
    counterparty: Counterparty | None = None
    reference: str | None = None
    balance_after: Decimal | None = None
    status: Status = Status.COMPLETED
    related_receipt: str | None = None
    extra: dict[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if not self.provider:
            raise InvalidValue("provider", "is empty")
        if not self.receipt or not self.receipt.strip():
            raise InvalidValue("receipt", "is empty")
        if self.account is not None and not self.account:
            object.__setattr__(self, "account", None)
        for name in ("provider", "account", "receipt", "related_receipt", "reference"):
            _check_length(name, getattr(self, name))
        if not isinstance(self.entry, Entry):
            object.__setattr__(self, "entry", _enum(Entry, self.entry, "entry"))
        if not isinstance(self.direction, Direction):
            object.__setattr__(self, "direction", _enum(Direction, self.direction, "direction"))
        if not isinstance(self.status, Status):
            object.__setattr__(self, "status", _enum(Status, self.status, "status"))
        minor_units(self.currency)  # refuses unknown codes
        if not isinstance(self.amount, Decimal):
            raise InvalidValue("amount", f"must be a Decimal, not {type(self.amount).__name__}")
        if self.amount < 0:
            raise InvalidValue("amount", f"{self.amount} is negative; direction carries the sign")
        amount = self.amount
        if amount.as_tuple().exponent != -minor_units(self.currency):
            object.__setattr__(self, "amount", quantize(amount, self.currency))
        if self.balance_after is not None:
            if not isinstance(self.balance_after, Decimal):
                raise InvalidValue("balance_after", "must be a Decimal")
            object.__setattr__(
                self, "balance_after", quantize(self.balance_after, self.currency, "balance_after")
            )
        if self.occurred_at is not None:
            if self.occurred_at.tzinfo is None or self.occurred_at.utcoffset() is None:
                raise InvalidValue("occurred_at", f"{self.occurred_at} has no time zone")
            if self.occurred_at.tzinfo is not UTC:
                object.__setattr__(self, "occurred_at", self.occurred_at.astimezone(UTC))
        if self.reference is not None:
            reference = self.reference.strip()
            object.__setattr__(self, "reference", reference or None)

    @classmethod
    def fast(
        cls,
        provider: str,
        account: str | None,
        receipt: str,
        entry: Entry,
        direction: Direction,
        amount: Decimal,
        currency: str,
        occurred_at: datetime | None,
        counterparty: Counterparty | None = None,
        reference: str | None = None,
        balance_after: Decimal | None = None,
        status: Status = Status.COMPLETED,
        related_receipt: str | None = None,
    ) -> Transaction:
        """The same transaction as the constructor, built about three times faster.

        For parsers of large files. The frozen dataclass ``__init__`` pays an
        ``object.__setattr__`` per field and ``__post_init__`` re-derives what a parser
        already knows; this checks the same invariants more cheaply (enum members, a
        known currency, exact minor units, a UTC time) and hands anything unusual to
        the constructor, so results and errors are identical.
        """
        minor = _MINOR.get(currency)
        if (
            minor is not None
            and provider
            and len(provider) <= 32
            and receipt
            and receipt.strip()
            and account != ""
            and type(entry) is Entry
            and type(direction) is Direction
            and type(status) is Status
            and type(amount) is Decimal
            and amount >= 0
            and (occurred_at is None or occurred_at.tzinfo is UTC)
            and (balance_after is None or type(balance_after) is Decimal)
            and (reference is None or (type(reference) is str and len(reference) <= 200))
            and len(receipt) <= 64
            and (account is None or len(account) <= 64)
            and (related_receipt is None or len(related_receipt) <= 64)
        ):
            try:
                exact_amount = amount.quantize(minor, context=_EXACT)
                exact_balance = (
                    None if balance_after is None else balance_after.quantize(minor, context=_EXACT)
                )
            except (Inexact, InvalidOperation):
                pass  # the constructor says which field is wrong and why
            else:
                self = object.__new__(cls)
                _set(self, "provider", provider)
                _set(self, "account", account)
                _set(self, "receipt", receipt)
                _set(self, "entry", entry)
                _set(self, "direction", direction)
                _set(self, "amount", exact_amount)
                _set(self, "currency", currency)
                _set(self, "occurred_at", occurred_at)
                _set(self, "counterparty", counterparty)
                _set(self, "reference", reference.strip() or None if reference else None)
                _set(self, "balance_after", exact_balance)
                _set(self, "status", status)
                _set(self, "related_receipt", related_receipt)
                _set(self, "extra", {})
                return self
        return cls(
            provider,
            account,
            receipt,
            entry,
            direction,
            amount,
            currency,
            occurred_at,
            counterparty,
            reference,
            balance_after,
            status,
            related_receipt,
        )

    @property
    def identity(self) -> Identity:
        """``(provider, account, receipt, entry)``: what makes two observations one."""
        return (self.provider, self.account or "", self.receipt, self.entry._value_)

    def to_dict(self) -> dict[str, Any]:
        """The ``parse`` contract's JSON object (amounts as strings, times as UTC ``Z``)."""
        return {
            "provider": self.provider,
            "account": self.account,
            "receipt": self.receipt,
            # ``_value_``: the member's value as stored, without the ``value`` property's
            # descriptor lookup (the worker makes a body per delivery).
            "entry": self.entry._value_,
            "direction": self.direction._value_,
            "amount": str(self.amount),
            "currency": self.currency,
            "occurred_at": format_utc(self.occurred_at),
            "counterparty": self.counterparty.to_dict() if self.counterparty else None,
            "reference": self.reference,
            "balance_after": None if self.balance_after is None else str(self.balance_after),
            "status": self.status._value_,
            "related_receipt": self.related_receipt,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Transaction:
        """Inverse of :meth:`to_dict`: ``from_dict(t.to_dict()) == t`` for every ``t``.

        Amounts and balances are read from strings (``"250.00"``), ints or ``Decimal``
        (``json.loads(..., parse_float=Decimal)``), never from floats. Keys the contract
        does not know are ignored. Anything missing or wrong raises
        :class:`~pesabridge.errors.InvalidValue` whose ``field`` is the key's path
        (``amount``, ``counterparty.msisdn_kind``).
        """
        if not isinstance(data, Mapping):
            raise InvalidValue("(top)", f"must be an object, not {_json_type(data)}")
        cp = data.get("counterparty")
        counterparty: Counterparty | None = None
        if cp:  # null or {}: no counterparty
            if not isinstance(cp, Mapping):
                raise InvalidValue(
                    "counterparty", f"must be an object or null, not {_json_type(cp)}"
                )
            kind = _optional_text(cp, "msisdn_kind", "counterparty.")
            counterparty = Counterparty(
                msisdn=_optional_text(cp, "msisdn", "counterparty."),
                msisdn_kind=None
                if not kind
                else _enum(MsisdnKind, kind, "counterparty.msisdn_kind"),
                name=_optional_text(cp, "name", "counterparty."),
            )
        occurred = _optional_text(data, "occurred_at")
        balance = data.get("balance_after")
        status = _optional_text(data, "status")
        amount = _decimal(data.get("amount"), "amount")
        if amount is None:
            raise InvalidValue("amount", "is missing")
        return cls(
            provider=_required_text(data, "provider"),
            account=_optional_text(data, "account"),
            receipt=_required_text(data, "receipt"),
            entry=_enum(Entry, _required_text(data, "entry"), "entry"),
            direction=_enum(Direction, _required_text(data, "direction"), "direction"),
            amount=amount,
            currency=_required_text(data, "currency"),
            occurred_at=parse_utc(occurred) if occurred else None,
            counterparty=counterparty,
            reference=_optional_text(data, "reference"),
            balance_after=_decimal(balance, "balance_after"),
            status=Status.COMPLETED if status is None else _enum(Status, status, "status"),
            related_receipt=_optional_text(data, "related_receipt"),
        )

    def differences(self, other: Transaction) -> dict[str, tuple[Any, Any]]:
        """Fields on which two observations of the same identity disagree.

        Only what a back office acts on counts: amount, currency, direction, reference,
        status, time and related receipt. A missing value on either side is not a
        disagreement (a callback has no balance, a statement masks the MSISDN).
        """
        diffs: dict[str, tuple[Any, Any]] = {}
        for name in (
            "amount",
            "currency",
            "direction",
            "status",
            "reference",
            "occurred_at",
            "related_receipt",
        ):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine is None or theirs is None:
                continue
            if mine != theirs:
                diffs[name] = (mine, theirs)
        return diffs

    def describe(self) -> str:
        """A log-safe one-liner (MSISDN masked)."""
        who = f" from {self.counterparty.masked()}" if self.counterparty else ""
        return (
            f"{self.provider}/{self.account or '-'} {self.receipt} {self.entry.value} "
            f"{self.direction.value} {self.amount} {self.currency}{who}"
        )


def _enum(kind: type[_E], value: object, field_name: str) -> _E:
    try:
        return kind(str(value))
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise InvalidValue(field_name, f"{value!r} is not one of {allowed}") from None


def _optional_text(data: Mapping[str, Any], key: str, prefix: str = "") -> str | None:
    value = data.get(key)
    if value is None or isinstance(value, str):
        return value
    raise InvalidValue(prefix + key, f"must be a string or null, not {_json_type(value)}")


def _required_text(data: Mapping[str, Any], key: str) -> str:
    if key not in data or data[key] is None:
        raise InvalidValue(key, "is missing")
    value = data[key]
    if not isinstance(value, str):
        raise InvalidValue(key, f"must be a string, not {_json_type(value)}")
    return value


def _decimal(value: object, field_name: str) -> Decimal | None:
    """A money value from a string, an int or a Decimal; floats are refused (inexact)."""
    if value is None:
        return None
    if isinstance(value, Decimal):
        number = value
    elif isinstance(value, int) and not isinstance(value, bool):
        number = Decimal(value)
    elif isinstance(value, str):
        try:
            number = Decimal(value.strip())
        except InvalidOperation:
            raise InvalidValue(field_name, f"{value!r} is not a number") from None
    elif isinstance(value, float):
        raise InvalidValue(field_name, f"{value!r} is a float; write amounts as strings")
    else:
        raise InvalidValue(field_name, f"must be a string, not {_json_type(value)}")
    if not number.is_finite():
        raise InvalidValue(field_name, f"{value!r} is not a number")
    return number


def _json_type(value: object) -> str:
    """The JSON name of a decoded value's type, for messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float | Decimal):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list | tuple):
        return "array"
    return type(value).__name__


def format_utc(moment: datetime | None) -> str | None:
    """``2024-05-06T18:05:59Z`` (microseconds kept only when present)."""
    if moment is None:
        return None
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    return moment.isoformat().removesuffix("+00:00") + "Z"


def parse_utc(text: str) -> datetime:
    """Read an ISO 8601 time with an offset or ``Z``; refuse a naive one.

    Raises :class:`~pesabridge.errors.InvalidValue` (a ``ValueError``) for text that is
    not an ISO 8601 time.
    """
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidValue("occurred_at", f"{text!r} is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise InvalidValue("occurred_at", f"{text!r} has no time zone")
    return moment.astimezone(UTC)
