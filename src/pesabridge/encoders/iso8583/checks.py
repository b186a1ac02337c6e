"""What each field may hold: the content rule of each kind, and a field's slot.

A :class:`Slot` is what the encoder checks a value against before pyiso8583 sees it:
the field's maximum length (hex characters for binary data), whether it is fixed and
numeric (padded with zeros) or fixed text (padded with spaces), and the rule its
content must follow (``n`` digits, ``an`` letters and digits, ``anp`` with spaces,
``ans`` printable ASCII, ``b`` whole bytes as hex digits).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .specs import Iso8583Spec


def _digits(value: str) -> bool:
    return value.isdigit() and value.isascii()


def _alnum(value: str) -> bool:
    return value.isalnum() and value.isascii()


def _alnum_space(value: str) -> bool:
    return value.isascii() and (not value.strip() or value.replace(" ", "").isalnum())


def _printable(value: str) -> bool:
    return value.isascii() and value.isprintable()


def _hex(value: str) -> bool:
    return all(c in "0123456789abcdefABCDEF" for c in value) and len(value) % 2 == 0


_CHECKS: dict[str, tuple[Callable[[str], bool], str]] = {
    "n": (_digits, "digits only"),
    "an": (_alnum, "letters and digits only"),
    "anp": (_alnum_space, "letters, digits and spaces only"),
    "ans": (_printable, "printable ASCII only"),
    "b": (_hex, "hex digits (whole bytes) only"),
}


@dataclass(frozen=True, slots=True)
class Slot:
    """One field as the encoder checks a value against it (see the module docstring)."""

    max_len: int
    fixed: bool
    numeric: bool
    check: Callable[[str], bool]
    rule: str
    desc: str


def slot_of(spec: Iso8583Spec, key: str) -> Slot:
    """Field ``key`` of ``spec`` as a :class:`Slot`."""
    definition = spec.fields[key]
    kind = spec.kind(key)
    check, rule = _CHECKS[kind]
    max_len = int(definition["max_len"])
    if definition.get("data_enc") == "b" and definition.get("len_count") != "nibbles":
        max_len *= 2  # hex characters
    return Slot(
        max_len, definition["len_type"] == 0, kind == "n", check, rule, str(definition["desc"])
    )
