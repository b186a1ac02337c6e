"""SWIFT MT940 customer statements (the block-4 text most back offices import).

Fields ``:20: :25: :28C: :60F:``, one ``:61:`` + ``:86:`` per entry, ``:62F: :64:``; the
SWIFT X character set only (names transliterated: é→e; anything else becomes ``.``);
every field's length limit enforced. The closing balance is recomputed from the lines
about to be written and checked against ``opening + credits − debits`` and against the
provider's own running balance before a byte is returned.
"""

from __future__ import annotations

import hashlib
import textwrap
import unicodedata
from datetime import date
from decimal import Decimal
from typing import ClassVar

from ..model import Direction, Entry, Transaction
from ._common import (
    DEFAULT_TIMEZONE,
    check_balance_after,
    check_statement,
    describe,
    is_reversal,
    money,
    option_error,
    zone,
)
from .base import EncodeError, Statement

SWIFT_X = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/-?:().,'+ ")
"""The SWIFT X character set (without CrLf, which only separates lines)."""

_SPECIAL = {
    "ß": "ss",
    "æ": "ae",
    "Æ": "AE",
    "œ": "oe",
    "Œ": "OE",
    "ø": "o",
    "Ø": "O",
    "đ": "d",
    "Đ": "D",
    "ł": "l",
    "Ł": "L",
    "&": "+",
    "_": "-",
    "\t": " ",
}

REFERENCE_LENGTH = 16
SUPPLEMENTARY_LENGTH = 34
NARRATIVE_LINES = 6
NARRATIVE_WIDTH = 65


def swift_x(text: str) -> str:
    """``text`` in the SWIFT X set: accents dropped (``é``→``e``, ``ß``→``ss``), ``&``→``+``,
    and any other character outside the set replaced by ``.``."""
    out: list[str] = []
    for char in text:
        if char in SWIFT_X:
            out.append(char)
        elif char in _SPECIAL:
            out.append(_SPECIAL[char])
        else:
            base = unicodedata.normalize("NFKD", char)
            kept = "".join(c for c in base if c in SWIFT_X)
            out.append(kept or ".")
    return "".join(out)


class Mt940Encoder:
    """Statement encoder for MT940.

    Options: ``truncate_references`` (default ``False``: a payer reference that does not
    fit the 16-character ``:61:`` reference is an :class:`EncodeError`; with ``True`` it
    is cut there and kept whole in ``:86:``), ``timezone`` (the business day's zone,
    default ``Africa/Nairobi``), ``line_ending`` (``"\\r\\n"``, SWIFT's, or ``"\\n"``),
    ``reversal_marks`` (default ``True``: a reversal is ``RC`` (a debit undoing a credit)
    or ``RD``; ``False`` writes plain ``D``/``C`` for importers that mis-sign ``RC``).
    """

    name: ClassVar[str] = "mt940"
    media_type: ClassVar[str] = "text/plain; charset=us-ascii"

    def __init__(
        self,
        truncate_references: bool = False,
        timezone: str = DEFAULT_TIMEZONE,
        line_ending: str = "\r\n",
        reversal_marks: bool = True,
    ) -> None:
        if not isinstance(truncate_references, bool):
            raise option_error(self.name, "truncate_references", "must be true or false")
        if line_ending not in ("\r\n", "\n"):
            raise option_error(self.name, "line_ending", "must be CRLF or LF")
        if not isinstance(reversal_marks, bool):
            raise option_error(self.name, "reversal_marks", "must be true or false")
        self.reversal_marks = reversal_marks
        self.truncate_references = truncate_references
        self.tz = zone(self.name, timezone)
        self.line_ending = line_ending

    def encode_statement(self, statement: Statement) -> bytes:
        checked = check_statement(statement, self.tz)
        check_balance_after(checked)
        currency = statement.currency
        lines = [
            f":20:{self._statement_reference(statement)}",
            f":25:{self._field(swift_x(statement.account), 35, 'account')}",
            f":28C:{statement.period_end.timetuple().tm_yday}/1",
            f":60F:{_balance(checked.opening, statement.period_start, currency)}",
        ]
        written = checked.opening
        for txn, day in zip(statement.entries, checked.dates, strict=True):
            entry_lines, signed = self._entry(txn, day, currency)
            lines.extend(entry_lines)
            written += signed
        if written != checked.closing:  # the :61: marks and amounts as written
            raise EncodeError(
                f"the :61: lines add up to {written}, not opening {checked.opening} + credits "
                f"{checked.credits} - debits {checked.debits} = {checked.closing}",
                field="closing_balance",
            )
        closing = _balance(checked.closing, statement.period_end, currency)
        lines += [f":62F:{closing}", f":64:{closing}", "-"]
        text = self.line_ending.join(lines) + self.line_ending
        return text.encode("ascii")

    # -- pieces ---------------------------------------------------------------------------

    def _statement_reference(self, statement: Statement) -> str:
        if statement.statement_id:
            return self._reference(statement.statement_id, None, ":20:", truncate=False)
        candidate = swift_x(f"PB{statement.account}{statement.period_end:%y%m%d}")
        if _valid_reference(candidate):
            return candidate
        digest = hashlib.sha256(candidate.encode()).hexdigest()[:14].upper()
        return f"PB{digest}"

    def _reference(self, value: str, receipt: str | None, field: str, *, truncate: bool) -> str:
        text = swift_x(value)
        if _valid_reference(text):
            return text
        if truncate:
            cleaned = text.replace("//", "/").strip("/")[:REFERENCE_LENGTH].rstrip("/")
            if cleaned:
                return cleaned
        raise EncodeError(
            f"{value!r} does not fit the MT940 reference (16 SWIFT characters, no leading, "
            f"trailing or double '/'); set truncate_references: true to cut it (the whole "
            f"reference stays in :86:)",
            receipt=receipt,
            field=field,
        )

    def _field(self, text: str, limit: int, field: str, receipt: str | None = None) -> str:
        if len(text) > limit:
            raise EncodeError(
                f"{text!r} is longer than {limit} characters", receipt=receipt, field=field
            )
        return text

    def _entry(self, txn: Transaction, day: date, currency: str) -> tuple[list[str], Decimal]:
        receipt = txn.receipt
        credit = txn.direction is Direction.CREDIT
        mark = "C" if credit else "D"
        if self.reversal_marks and is_reversal(txn):
            mark = "RD" if credit else "RC"
        amount = _amount(money(txn.amount, currency, receipt=receipt))
        if len(amount) > 15:
            raise EncodeError(
                f"{txn.amount} has more than 15 characters", receipt=receipt, field="amount"
            )
        code = "NCHG" if txn.entry is Entry.CHARGE else _TYPE_CODES.get(txn.entry, "NMSC")
        customer = (
            self._reference(txn.reference, receipt, "reference", truncate=self.truncate_references)
            if txn.reference
            else "NONREF"
        )
        bank = self._reference(receipt, receipt, "receipt", truncate=False)
        line = f":61:{day:%y%m%d}{day:%m%d}{mark}{amount}{code}{customer}//{bank}"
        party = txn.counterparty
        supplementary = swift_x(party.name if party and party.name else describe(txn))
        lines = [line, _safe_line(supplementary[: SUPPLEMENTARY_LENGTH - 1])]
        lines += self._narrative(txn)
        return lines, txn.amount if credit else -txn.amount

    def _narrative(self, txn: Transaction) -> list[str]:
        """``:86:``: what the row is, who paid, their reference, the receipt (6 × 65)."""
        parts = [describe(txn).upper()]
        party = txn.counterparty
        if party is not None and (party.msisdn or party.name):
            who = " ".join(p for p in (party.msisdn, party.name) if p)
            parts.append(("FROM " if txn.direction is Direction.CREDIT else "TO ") + who)
        if txn.reference:
            parts.append(f"REF {txn.reference}")
        parts.append(f"RECEIPT {txn.receipt}")
        lines: list[str] = []
        for part in parts:
            lines += textwrap.wrap(
                swift_x(part), NARRATIVE_WIDTH - 1, break_long_words=True, drop_whitespace=True
            )
        if len(lines) > NARRATIVE_LINES:
            raise EncodeError(
                f":86: needs {len(lines)} lines, MT940 allows {NARRATIVE_LINES} of "
                f"{NARRATIVE_WIDTH}",
                receipt=txn.receipt,
                field="reference",
            )
        lines = [_safe_line(line) for line in lines]
        lines[0] = ":86:" + lines[0]
        return lines


_TYPE_CODES = {
    Entry.PAYMENT: "NTRF",
    Entry.PAYOUT: "NTRF",
    Entry.TRANSFER: "NTRF",
    Entry.SETTLEMENT: "NTRF",
    Entry.REVERSAL: "NTRF",
}


def _valid_reference(text: str) -> bool:
    return (
        0 < len(text) <= REFERENCE_LENGTH
        and not text.startswith("/")
        and not text.endswith("/")
        and "//" not in text
    )


def _safe_line(text: str) -> str:
    """A continuation line may not start with ``:`` or ``-`` (tag / end of message)."""
    return f" {text}" if text[:1] in (":", "-") else text


def _amount(text: str) -> str:
    """``1020,00``; ``1500,`` for a currency without minor units (the comma is mandatory)."""
    return text.replace(".", ",") if "." in text else f"{text},"


def _balance(value: Decimal, day: date, currency: str) -> str:
    mark = "D" if value < 0 else "C"
    return f"{mark}{day:%y%m%d}{currency}{_amount(money(value, currency, field='balance'))}"
