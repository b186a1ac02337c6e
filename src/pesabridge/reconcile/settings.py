"""The ``reconciliation:`` section of the config file.

Kept free of imports from the rest of pesabridge (only pydantic), because
:mod:`pesabridge.config` embeds it in :class:`~pesabridge.config.Config`.
"""

from __future__ import annotations

from decimal import Decimal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_ZONE = "Africa/Nairobi"
"""East Africa Time (UTC+3, no daylight saving): M-Pesa's statements and callbacks."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{value!r} is not an IANA time zone (e.g. Africa/Nairobi)") from None
    return value


class MatchRules(_Strict):
    """How records without a shared receipt are paired (back-office lines, foreign ids)."""

    amount_tolerance: Decimal = Field(default=Decimal("0"), ge=0)
    """Largest difference in amount still taken as equal, in currency units."""
    time_window_minutes: float = Field(default=120.0, ge=0)
    """Largest difference in time for two records to be the same movement."""
    reference: bool = True
    """Require the references to be equal (after trimming, case- and space-folding)
    when both records have one."""
    counterparty: bool = True
    """Compare counterparties where both are plain MSISDNs (never hashed ids)."""
    min_confidence: float = Field(default=0.6, ge=0, le=1)
    """Pairs scored below this are left unmatched."""
    groups: bool = True
    """Also try one-to-many and many-to-one matches (a day's charges posted as one line)."""


class BackofficeSettings(_Strict):
    """Where the back office's own record of its postings comes from, and how to read it.

    A CSV export (``--backoffice FILE``) or an HTTP endpoint (``url``) returning CSV or a
    JSON list of objects; ``columns`` maps pesabridge's field names to the export's.
    """

    sink: str | None = None
    """The sink whose deliveries the record is compared with (needed when the account's
    transactions go to several sinks)."""
    url: str | None = None
    headers: dict[str, str] = {}
    items: str | None = None
    """For a JSON object answer: the key holding the list of postings."""
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    columns: dict[str, str] = {}
    """Field -> column. Fields: receipt, document, key, amount, time, reference,
    counterparty, entry. Unmapped fields are looked up under their own name."""
    time_format: str | None = None
    """``strptime`` format of the time column; ISO 8601 when omitted. Times without an
    offset are in the account's zone."""
    amount_in_minor_units: bool = False

    @field_validator("columns")
    @classmethod
    def _known_fields(cls, value: dict[str, str]) -> dict[str, str]:
        unknown = set(value) - set(BACKOFFICE_FIELDS)
        if unknown:
            raise ValueError(
                f"unknown field(s) {', '.join(sorted(unknown))}; "
                f"known: {', '.join(BACKOFFICE_FIELDS)}"
            )
        return value


BACKOFFICE_FIELDS = (
    "receipt",
    "document",
    "key",
    "amount",
    "time",
    "reference",
    "counterparty",
    "entry",
)


class AccountSettings(_Strict):
    """One account (paybill, till, wallet) to reconcile."""

    account: str
    provider: str = "mpesa"
    currency: str = "KES"
    """The account's currency (for totals and reports)."""
    timezone: str | None = None
    """Day boundaries; the section's ``timezone`` when omitted."""
    callbacks: bool | None = None
    """Whether the account receives callbacks; when omitted, it does if the ledger holds
    any callback evidence for it."""
    callback_sources: list[str] | None = None
    """Callback sources whose routes a backfilled transaction takes; every callback
    source in the config when omitted."""
    callback_entries: list[str] = ["payment"]
    hold_above: Decimal | None = Field(default=None, ge=0)
    """Hold a callback of at least this amount until a statement confirms it; the
    section's ``hold_above`` when omitted (see docs/reconciliation.md)."""
    """Entries a callback reports (a charge or a settlement never comes by callback, so
    its absence is not a lost callback)."""
    backoffice: BackofficeSettings | None = None

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str | None) -> str | None:
        return None if value is None else _zone(value)


class ReconciliationConfig(_Strict):
    """``reconciliation:``; every key is optional."""

    auto: bool = True
    """Reconcile the days a statement file covers right after it is ingested."""
    timezone: str = DEFAULT_ZONE
    accounts: list[AccountSettings] = []
    rules: MatchRules = MatchRules()
    backoffice: BackofficeSettings | None = None
    """For accounts without their own ``backoffice``."""
    hold_above: Decimal | None = Field(default=None, ge=0)
    """For accounts without their own ``hold_above``: callbacks of at least this amount
    are delivered only once a statement confirms them (none held when omitted)."""

    @field_validator("timezone")
    @classmethod
    def _tz(cls, value: str) -> str:
        return _zone(value)

    def account(self, account: str, provider: str = "mpesa") -> AccountSettings:
        """The settings of ``account`` (defaults when it is not listed)."""
        for item in self.accounts:
            if item.account == account and item.provider == provider:
                return item
        return AccountSettings(account=account, provider=provider)

    def hold_threshold(self, settings: AccountSettings) -> Decimal | None:
        """The amount from which ``settings``' callbacks wait for a statement."""
        return settings.hold_above if settings.hold_above is not None else self.hold_above

    def zone(self, settings: AccountSettings) -> ZoneInfo:
        """The zone that bounds ``settings``' days."""
        return ZoneInfo(settings.timezone or self.timezone)
