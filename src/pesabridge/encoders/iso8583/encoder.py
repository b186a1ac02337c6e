"""ISO 8583 messages from canonical transactions, on pyiso8583.

A mobile-money payment has already happened when pesabridge sees it, so the default
message is an *advice* (0220 in 1987, 1220 in 1993): the host must record it, it cannot
decline it. ``mti: request`` sends 0200/1200 instead. A reversal entry becomes a
reversal advice (0420/1420) carrying the original's data elements.

Every field is checked before pyiso8583 sees it (pyiso8583 accepts letters in a numeric
field and would pad or refuse lengths with a less helpful message): a value that does
not fit raises :class:`~pesabridge.encoders.base.EncodeError` naming the field; nothing
is ever truncated.

STANs come from the caller (``MessageContext.stan``; allocators in :mod:`.stan`). The
options are in :mod:`.options`, the fields' content rules in :mod:`.checks`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import iso8583

from ...model import Entry, Status, Transaction, numeric_code
from ..base import EncodeError, MessageContext
from ..options import problem, validate_options
from .checks import slot_of
from .options import DEFAULT_PROCESSING_CODES, Iso8583Options
from .specs import Iso8583Spec, load_spec
from .stan import STAN_MAX

_FAILED = Status.FAILED
_REVERSAL = Entry.REVERSAL

_D2 = tuple(f"{i:02}" for i in range(100))
_PLACEHOLDERS = ("account", "receipt", "reference", "provider", "related_receipt", "entry")


@dataclass(frozen=True, slots=True)
class OriginalMessage:
    """What was sent for the transaction a reversal undoes (for field 90 / 56)."""

    mti: str
    stan: int
    transmitted_at: datetime
    occurred_at: datetime | None = None


class Iso8583Encoder:
    """A transaction as one ISO 8583 message (see the module docstring)."""

    name: ClassVar[str] = "iso8583"
    media_type: ClassVar[str] = "application/iso8583"

    def __init__(self, **options: Any) -> None:
        self.options = validate_options(Iso8583Options, options)
        self.spec: Iso8583Spec = load_spec(self.options.spec)
        try:
            self.zone = ZoneInfo(self.options.zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise problem(f"zone: {self.options.zone!r} is not a known time zone") from None
        self.mti_kind = self._mti_kind(self.options.mti)
        self._mti = self.spec.mti[self.mti_kind]
        self._mti_reversal = self.spec.mti["reversal"]
        self._advice = self.mti_kind == "advice"
        self.processing_codes = {**DEFAULT_PROCESSING_CODES, **self.options.processing_codes}
        self._codes = {Entry(name): code for name, code in self.processing_codes.items()}
        self._slots = {
            key: slot_of(self.spec, key) for key in self.spec.fields if key not in "hp1t"
        }
        self._v1993 = self.spec.version == 1993
        for key, width in (("3", 6), ("7", 10), ("11", 6), ("49", 3)):
            self._require_fixed(key, width)
        self._require_fixed("12", 12 if self._v1993 else 6)
        if not self._v1993:
            self._require_fixed("13", 4)
        self._amount_width = self._require_fixed("4", None)
        if "37" not in self._slots:
            raise problem(f"spec {self.spec.name}: field 37 is not defined")
        rrn = self._slots["37"]
        self._rrn = rrn.max_len
        # letters and digits always fit a fixed an/anp/ans field 37 (padded with spaces)
        self._rrn_text = rrn.fixed and self.spec.kind("37") in ("an", "anp", "ans")
        self._overrides = {
            key: self._static(key, value) for key, value in self.options.fields.items()
        }
        self._terminal = self.options.terminal_id
        self._merchant = self.options.merchant_id
        acquirer = self.options.acquirer_id
        self._acquirer = None if acquirer is None else self._fit("32", acquirer, None)
        # Small caches for the hot path: an account's fields 41/42, a currency's field 49,
        # the transmission time of the last context.
        self._by_account: dict[str | None, tuple[str, str | None]] = {}
        self._currencies: dict[str, str] = {}
        self._last_now: datetime | None = None
        self._last_field7 = ""

    # -- configuration ---------------------------------------------------------------

    def _mti_kind(self, mti: str) -> Literal["advice", "request"]:
        if mti in ("advice", self.spec.mti["advice"]):
            return "advice"
        if mti in ("request", self.spec.mti["request"]):
            return "request"
        raise problem(
            f"mti: {mti!r} is neither advice ({self.spec.mti['advice']}) nor request "
            f"({self.spec.mti['request']}) in spec {self.spec.name}"
        )

    def _require_fixed(self, key: str, width: int | None) -> int:
        slot = self._slots.get(key)
        if slot is None or not slot.fixed or not slot.numeric:
            raise problem(f"spec {self.spec.name}: field {key} must be a fixed numeric field")
        if width is not None and slot.max_len != width:
            raise problem(
                f"spec {self.spec.name}: field {key} must be {width} digits, not {slot.max_len}"
            )
        return slot.max_len

    def _static(self, key: str, value: str | None) -> str | None:
        if key not in self._slots:
            raise problem(f"fields.{key}: spec {self.spec.name} has no field {key}")
        if value is None or "{" in value:
            return value
        return self._fit(key, value, None)

    # -- encoding --------------------------------------------------------------------

    def _fit(self, key: str, value: str, receipt: str | None) -> str:
        """``value`` checked against field ``key`` and padded if the field is fixed."""
        slot = self._slots[key]
        size = len(value)
        if size > slot.max_len:
            raise EncodeError(
                f"{value!r} is {size} characters; {slot.desc} holds at most {slot.max_len} "
                "(nothing is truncated)",
                receipt=receipt,
                field=f"field {key}",
            )
        if not slot.check(value):
            raise EncodeError(
                f"{value!r} is not valid for {slot.desc}: {slot.rule}",
                receipt=receipt,
                field=f"field {key}",
            )
        if slot.fixed and size < slot.max_len:
            return value.zfill(slot.max_len) if slot.numeric else value.ljust(slot.max_len)
        return value

    def original_of(self, txn: Transaction, context: MessageContext) -> OriginalMessage:
        """What a reversal of ``txn`` should quote, once ``txn`` was sent with ``context``."""
        if context.stan is None:
            raise EncodeError("no STAN", receipt=txn.receipt, field="field 11")
        return OriginalMessage(
            self.spec.mti[self.mti_kind], context.stan, context.now, txn.occurred_at
        )

    def message(
        self, txn: Transaction, context: MessageContext, original: OriginalMessage | None = None
    ) -> dict[str, str]:
        """The fields of the message, checked, as pyiso8583 takes them."""
        receipt = txn.receipt
        stan = context.stan
        if stan is None:
            raise EncodeError(
                "no STAN: every ISO 8583 message needs its own trace number (MessageContext.stan)",
                receipt=receipt,
                field="field 11",
            )
        if not 1 <= stan <= STAN_MAX:
            raise EncodeError(
                f"STAN {stan} is not 1..{STAN_MAX}", receipt=receipt, field="field 11"
            )
        if txn.status is _FAILED:
            raise EncodeError(
                "status failed: no money moved, there is nothing for a host to record",
                receipt=receipt,
                field="status",
            )
        entry = txn.entry
        reversal = entry is _REVERSAL
        spec = self.spec
        code = self._codes.get(entry)
        if code is None:
            raise EncodeError(
                f"no processing code for entry {entry.value!r}; set the option "
                f"processing_codes.{entry.value}",
                receipt=receipt,
                field="field 3",
            )
        minor = str(txn.amount).replace(".", "")
        if len(minor) > self._amount_width:
            raise EncodeError(
                f"{txn.amount} {txn.currency} needs {len(minor)} digits; field 4 holds "
                f"{self._amount_width}",
                receipt=receipt,
                field="field 4",
            )
        now = context.now
        if now is not self._last_now:
            d2 = _D2
            self._last_field7 = (
                d2[now.month] + d2[now.day] + d2[now.hour] + d2[now.minute] + d2[now.second]
            )
            self._last_now = now
        doc: dict[str, str] = {
            "t": self._mti_reversal if reversal else self._mti,
            "3": code,
            "4": minor.zfill(self._amount_width),
            "7": self._last_field7,
            "11": f"{stan:06}",
        }
        occurred = txn.occurred_at
        if occurred is not None:
            local = occurred.astimezone(self.zone)
            d2 = _D2
            clock = d2[local.hour] + d2[local.minute] + d2[local.second]
            if self._v1993:
                doc["12"] = d2[local.year % 100] + d2[local.month] + d2[local.day] + clock
            else:
                doc["12"] = clock
                doc["13"] = d2[local.month] + d2[local.day]
        if self._v1993:
            doc["24"] = "400" if reversal else "200"
        if self._acquirer is not None:
            doc["32"] = self._acquirer
        if reversal:
            if not txn.related_receipt:
                raise EncodeError(
                    "a reversal needs related_receipt (the original's receipt) for field 37 "
                    f"and field {spec.original_data_field}",
                    receipt=receipt,
                    field="related_receipt",
                )
            doc["37"] = self._fit("37", txn.related_receipt, receipt)
            doc[spec.original_data_field] = self._original_data(original, receipt)
        else:
            if (
                self._rrn_text
                and len(receipt) <= self._rrn
                and receipt.isalnum()
                and receipt.isascii()
            ):
                doc["37"] = receipt.ljust(self._rrn)  # the common case, checked inline
            else:
                doc["37"] = self._fit("37", receipt, receipt)
        if reversal or self._advice:
            doc["39"] = spec.approved
        account = txn.account
        cached = self._by_account.get(account)
        if cached is None:
            cached = self._account_fields(account, receipt)
        doc["41"] = cached[0]
        if cached[1] is not None:
            doc["42"] = cached[1]
        currency = self._currencies.get(txn.currency)
        if currency is None:
            currency = self._currencies[txn.currency] = numeric_code(txn.currency)
        doc["49"] = currency
        if txn.reference is not None:
            doc["102"] = self._fit("102", txn.reference, receipt)
        if self._overrides:
            self._apply_overrides(doc, txn)
        return doc

    def _account_fields(self, account: str | None, receipt: str) -> tuple[str, str | None]:
        """Fields 41 and 42 for an account (checked once, then cached)."""
        terminal = self._terminal if self._terminal is not None else account
        if terminal is None:
            raise EncodeError(
                "the transaction has no account for field 41; set the option terminal_id",
                receipt=receipt,
                field="field 41",
            )
        merchant = self._merchant if self._merchant is not None else account
        fields = (
            self._fit("41", terminal, receipt),
            None if merchant is None else self._fit("42", merchant, receipt),
        )
        if len(self._by_account) < 10_000:
            self._by_account[account] = fields
        return fields

    def _original_data(self, original: OriginalMessage | None, receipt: str) -> str:
        spec = self.spec
        acquirer = self.options.acquirer_id or ""
        if self._v1993:
            if original is None:
                body = spec.mti["advice"] + "0" * 18
            else:
                local = original.occurred_at.astimezone(self.zone) if original.occurred_at else None
                when = local.strftime("%y%m%d%H%M%S") if local else "0" * 12
                body = f"{original.mti}{original.stan:06}{when}"
            value = f"{body}{len(acquirer):02}{acquirer}"
        else:
            if original is None:
                body = spec.mti[self.mti_kind] + "0" * 16
            else:
                sent = original.transmitted_at
                body = f"{original.mti}{original.stan:06}{sent:%m%d%H%M%S}"
            value = f"{body}{acquirer.zfill(11)}{'0' * 11}"
        return self._fit(spec.original_data_field, value, receipt)

    def _apply_overrides(self, doc: dict[str, str], txn: Transaction) -> None:
        values: Mapping[str, str] | None = None
        for key, value in self._overrides.items():
            if value is None:
                doc.pop(key, None)
                continue
            if "{" in value:
                if values is None:
                    values = {name: str(getattr(txn, name) or "") for name in _PLACEHOLDERS}
                try:
                    filled = value.format_map(values)
                except (KeyError, ValueError, IndexError) as exc:
                    raise EncodeError(
                        f"cannot fill {value!r} ({exc}); placeholders: {', '.join(_PLACEHOLDERS)}",
                        receipt=txn.receipt,
                        field=f"field {key}",
                    ) from None
                if filled == "":
                    doc.pop(key, None)
                    continue
                value = self._fit(key, filled, txn.receipt)
            doc[key] = value

    def encode_fields(self, doc: dict[str, str], receipt: str | None = None) -> bytes:
        """pyiso8583 ``encode`` of checked fields (it adds the bitmaps to ``doc``)."""
        try:
            raw, _ = iso8583.encode(doc, self.spec.fields)
        except iso8583.EncodeError as exc:
            raise EncodeError(str(exc), receipt=receipt, field=f"field {exc.field}") from None
        return bytes(raw)

    def encode(
        self, txn: Transaction, context: MessageContext, original: OriginalMessage | None = None
    ) -> bytes:
        """The message for ``txn``; a reversal quotes ``original`` when it is known."""
        return self.encode_fields(self.message(txn, context, original), txn.receipt)
