"""ISO 4217 currencies: minor units and numeric codes, and quantising money to them."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from ..errors import InvalidValue

# alpha code -> (numeric code, minor units), from ISO 4217. Mobile-money markets first;
# add a currency here when a provider starts reporting it.
CURRENCIES: dict[str, tuple[str, int]] = {
    "KES": ("404", 2),
    "UGX": ("800", 0),
    "TZS": ("834", 2),
    "RWF": ("646", 0),
    "BIF": ("108", 0),
    "CDF": ("976", 2),
    "SSP": ("728", 2),
    "ETB": ("230", 2),
    "SOS": ("706", 2),
    "ZMW": ("967", 2),
    "MWK": ("454", 2),
    "MZN": ("943", 2),
    "GHS": ("936", 2),
    "NGN": ("566", 2),
    "XOF": ("952", 0),
    "XAF": ("950", 0),
    "GNF": ("324", 0),
    "LRD": ("430", 2),
    "SLE": ("925", 2),
    "MGA": ("969", 2),
    "ZAR": ("710", 2),
    "BWP": ("072", 2),
    "NAD": ("516", 2),
    "LSL": ("426", 2),
    "SZL": ("748", 2),
    "EGP": ("818", 2),
    "MAD": ("504", 2),
    "USD": ("840", 2),
    "EUR": ("978", 2),
    "GBP": ("826", 2),
    "INR": ("356", 2),
    "AED": ("784", 2),
    "JPY": ("392", 0),
    "BHD": ("048", 3),
    "KWD": ("414", 3),
    "OMR": ("512", 3),
    "TND": ("788", 3),
}

_EXPONENTS: dict[int, Decimal] = {n: Decimal(1).scaleb(-n) for n in range(4)}


def minor_units(currency: str) -> int:
    """Number of decimal places the currency's amounts carry (KES 2, UGX 0)."""
    try:
        return CURRENCIES[currency][1]
    except KeyError:
        raise InvalidValue("currency", f"{currency!r} is not a known ISO 4217 code") from None


def numeric_code(currency: str) -> str:
    """The three-digit ISO 4217 numeric code (``404`` for KES)."""
    try:
        return CURRENCIES[currency][0]
    except KeyError:
        raise InvalidValue("currency", f"{currency!r} is not a known ISO 4217 code") from None


def quantize(value: Decimal, currency: str, field: str = "amount") -> Decimal:
    """Return ``value`` with exactly the currency's minor units.

    Digits beyond the minor units are refused, never rounded away: ``1.005`` KES is an
    error, ``100.0`` UGX becomes ``100``.
    """
    if not value.is_finite():
        raise InvalidValue(field, f"{value} is not a finite amount")
    exponent = _EXPONENTS[minor_units(currency)]
    try:
        quantized = value.quantize(exponent)
    except InvalidOperation:
        raise InvalidValue(field, f"{value} is too large") from None
    if quantized != value:
        raise InvalidValue(
            field,
            f"{value} has more decimal places than {currency} allows ({minor_units(currency)})",
        )
    return quantized


def parse_amount(text: str, field: str = "amount") -> Decimal:
    """Read an amount as written by a provider: ``"1,020.00"``, ``"-1,500.00"``, ``"10"``.

    Thousands separators and surrounding spaces are accepted; anything else that is not
    a decimal number raises :class:`InvalidValue`.
    """
    cleaned = text.strip().replace(",", "")
    if not cleaned:
        raise InvalidValue(field, "is empty")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        raise InvalidValue(field, f"{text!r} is not a number") from None
    if not value.is_finite():
        raise InvalidValue(field, f"{text!r} is not a number")
    return value
