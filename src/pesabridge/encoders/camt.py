"""ISO 20022 cash management: camt.053 statements and camt.054 notifications.

Both write version ``.001.02`` (default) or ``.001.08`` (``version="08"``), stream their
entries through :func:`lxml.etree.xmlfile`, and validate the result against the official
XSD before returning it: an invalid document is an :class:`EncodeError` carrying the
schema's reason, never bytes.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from datetime import date, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import BinaryIO, ClassVar

from lxml import etree

from ..model import Transaction
from . import _iso20022 as iso
from ._common import (
    DEFAULT_TIMEZONE,
    Checked,
    check_balance_after,
    check_currency,
    check_statement,
    choose,
    entry_id,
    local_date,
    money,
    zone,
)
from .base import EncodeError, MessageContext, Statement


class _CamtEncoder:
    message: ClassVar[str]
    name: ClassVar[str]
    media_type: ClassVar[str] = "application/xml"

    def __init__(self, version: str | int = "02", timezone: str = DEFAULT_TIMEZONE) -> None:
        version_text = str(version).zfill(2)
        self.version = choose(self.name, "version", version_text, iso.VERSIONS)
        self.tz: tzinfo = zone(self.name, timezone)
        self.ns = iso.namespace(self.message, self.version)

    # -- the public, validating entry points -------------------------------------------

    def encode_statement(self, statement: Statement) -> bytes:
        """The whole document, validated against the XSD."""
        buffer = io.BytesIO()
        self.write_statement(statement, buffer)
        document = buffer.getvalue()
        iso.validate(document, self.message, self.version)
        return document

    def encode_statement_to(self, statement: Statement, path: str | os.PathLike[str]) -> None:
        """Write a (large) statement to ``path``: streamed, validated, then renamed.

        Memory stays flat however many entries there are: entries are written one at a
        time and validated while re-reading the file. ``path`` appears only once the
        document is valid; on any error the partial file is removed.
        """
        target = Path(path)
        partial = target.with_name(f".{target.name}.partial")
        try:
            with partial.open("wb") as handle:
                self.write_statement(statement, handle)
            iso.validate(partial, self.message, self.version)
            partial.replace(target)
        finally:
            partial.unlink(missing_ok=True)

    def write_statement(self, statement: Statement, out: BinaryIO) -> None:
        """Stream the document to ``out`` *without* validating it (callers validate)."""
        checked = check_statement(statement, self.tz)
        check_balance_after(checked)
        with etree.xmlfile(out, encoding="UTF-8") as xf:
            xf.write_declaration()
            with xf.element(f"{{{self.ns}}}Document", nsmap={None: self.ns}):
                xf.write("\n")
                self._write_body(xf, checked)

    def _write_body(self, xf: etree._IncrementalFileWriter, checked: Checked) -> None:
        raise NotImplementedError

    # -- shared pieces ------------------------------------------------------------------

    def _group_header(self, msg_id: str, statement_time: str) -> etree._Element:
        header = etree.Element("GrpHdr")
        iso.add(header, "MsgId", msg_id)
        iso.add(header, "CreDtTm", statement_time)
        return header

    def _report_head(self, tag: str, checked: Checked) -> list[etree._Element]:
        """``Id``, ``CreDtTm``, ``FrToDt`` and ``Acct`` of a statement or notification."""
        statement = checked.statement
        head: list[etree._Element] = []
        wrapper = etree.Element(tag)
        iso.add(wrapper, "Id", _statement_id(statement))
        iso.add(wrapper, "CreDtTm", iso.iso_datetime(statement.created_at, self.tz))
        period = iso.add(wrapper, "FrToDt")
        iso.add(period, "FrDtTm", iso.day_start(statement.period_start, self.tz))
        iso.add(period, "ToDtTm", iso.day_end(statement.period_end, self.tz))
        iso.account(
            wrapper, statement.account, statement.provider, statement.currency, statement.holder
        )
        head.extend(wrapper)
        return head

    def _entries(
        self,
        xf: etree._IncrementalFileWriter,
        entries: Iterable[Transaction],
        days: list[date],
        currency: str,
    ) -> None:
        for txn, day in zip(entries, days, strict=True):
            xf.write(iso.entry(txn, self.version, day, currency), pretty_print=True)


class Camt053Encoder(_CamtEncoder):
    """camt.053 ``BankToCustomerStatement``: one account, one period, OPBD and CLBD."""

    message = "camt.053"
    name = "camt053"

    def _write_body(self, xf: etree._IncrementalFileWriter, checked: Checked) -> None:
        statement = checked.statement
        currency = statement.currency
        with xf.element(f"{{{self.ns}}}BkToCstmrStmt"):
            xf.write("\n")
            xf.write(
                self._group_header(
                    _statement_id(statement), iso.iso_datetime(statement.created_at, self.tz)
                ),
                pretty_print=True,
            )
            with xf.element(f"{{{self.ns}}}Stmt"):
                xf.write("\n")
                for element in self._report_head("Stmt", checked):
                    xf.write(element, pretty_print=True)
                xf.write(
                    _balance("OPBD", checked.opening, currency, statement.period_start),
                    pretty_print=True,
                )
                xf.write(
                    _balance("CLBD", checked.closing, currency, statement.period_end),
                    pretty_print=True,
                )
                xf.write(_summary(checked), pretty_print=True)
                self._entries(xf, statement.entries, checked.dates, currency)


class Camt054Encoder(_CamtEncoder):
    """camt.054 ``BankToCustomerDebitCreditNotification``.

    As a message encoder, one notification per transaction (``encode``); as a statement
    encoder, one notification carrying a statement's entries (``encode_statement``).
    """

    message = "camt.054"
    name = "camt054"

    def encode(self, txn: Transaction, context: MessageContext) -> bytes:
        """One notification for one booked transaction, validated against the XSD."""
        if txn.account is None:
            raise EncodeError(
                "has no account (short code), which camt.054 requires",
                receipt=txn.receipt,
                field="account",
            )
        if txn.occurred_at is None:
            raise EncodeError(
                "has no time, so no booking date", receipt=txn.receipt, field="occurred_at"
            )
        check_currency(txn.currency)
        money(txn.amount, txn.currency, receipt=txn.receipt)
        day = local_date(txn.occurred_at, self.tz)
        statement = Statement(
            account=txn.account,
            currency=txn.currency,
            period_start=day,
            period_end=day,
            opening_balance=0 * txn.amount,
            entries=[txn],
            provider=txn.provider,
            statement_id=entry_id(txn),
            created_at=context.now,
        )
        checked = check_statement(statement, self.tz)
        buffer = io.BytesIO()
        with etree.xmlfile(buffer, encoding="UTF-8") as xf:
            xf.write_declaration()
            with xf.element(f"{{{self.ns}}}Document", nsmap={None: self.ns}):
                xf.write("\n")
                self._write_notification(
                    xf,
                    checked,
                    iso.message_id(context.idempotency_key or entry_id(txn)),
                    with_period=False,
                )
        document = buffer.getvalue()
        iso.validate(document, self.message, self.version)
        return document

    def _write_body(self, xf: etree._IncrementalFileWriter, checked: Checked) -> None:
        self._write_notification(xf, checked, _statement_id(checked.statement), with_period=True)

    def _write_notification(
        self, xf: etree._IncrementalFileWriter, checked: Checked, msg_id: str, *, with_period: bool
    ) -> None:
        statement = checked.statement
        with xf.element(f"{{{self.ns}}}BkToCstmrDbtCdtNtfctn"):
            xf.write("\n")
            xf.write(
                self._group_header(msg_id, iso.iso_datetime(statement.created_at, self.tz)),
                pretty_print=True,
            )
            with xf.element(f"{{{self.ns}}}Ntfctn"):
                xf.write("\n")
                for element in self._report_head("Ntfctn", checked):
                    if element.tag == "FrToDt" and not with_period:
                        continue
                    xf.write(element, pretty_print=True)
                if with_period:
                    xf.write(_summary(checked), pretty_print=True)
                self._entries(xf, statement.entries, checked.dates, statement.currency)


def _statement_id(statement: Statement) -> str:
    if statement.statement_id:
        return statement.statement_id
    start, end = statement.period_start, statement.period_end
    period = f"{start:%Y%m%d}" if start == end else f"{start:%Y%m%d}-{end:%Y%m%d}"
    return iso.message_id(f"{statement.account}-{period}")


def _balance(code: str, value: Decimal, currency: str, day: date) -> etree._Element:
    bal = etree.Element("Bal")
    iso.nested(bal, "Tp/CdOrPrtry/Cd", code)
    iso.amount(bal, "Amt", money(value, currency, field=code), currency)
    iso.add(bal, "CdtDbtInd", "DBIT" if value < 0 else "CRDT")
    iso.nested(bal, "Dt/Dt", day.isoformat())
    return bal


def _summary(checked: Checked) -> etree._Element:
    """``TxsSummry``: count and sum of credit and of debit entries."""
    credits = sum(1 for t in checked.statement.entries if t.direction.value == "credit")
    debits = len(checked.statement.entries) - credits
    summary = etree.Element("TxsSummry")
    for tag, count, total in (
        ("TtlCdtNtries", credits, checked.credits),
        ("TtlDbtNtries", debits, checked.debits),
    ):
        block = iso.add(summary, tag)
        iso.add(block, "NbOfNtries", str(count))
        iso.add(block, "Sum", money(total, checked.statement.currency, field=tag))
    return summary
