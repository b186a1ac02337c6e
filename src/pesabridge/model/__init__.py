"""The canonical model every source parses into and every encoder reads from."""

from .currency import CURRENCIES, minor_units, numeric_code, parse_amount, quantize
from .msisdn import MsisdnKind, classify_msisdn, mask_msisdn
from .timezones import EAT, eat_to_utc
from .transaction import (
    Counterparty,
    Direction,
    Entry,
    Identity,
    Status,
    Transaction,
    format_utc,
    parse_utc,
)

__all__ = [
    "CURRENCIES",
    "EAT",
    "Counterparty",
    "Direction",
    "Entry",
    "Identity",
    "MsisdnKind",
    "Status",
    "Transaction",
    "classify_msisdn",
    "eat_to_utc",
    "format_utc",
    "mask_msisdn",
    "minor_units",
    "numeric_code",
    "parse_amount",
    "parse_utc",
    "quantize",
]
