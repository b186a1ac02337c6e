"""OFX bank statements: OFX 2.2 XML (default) or OFX 1.0.2 SGML.

One ``STMTRS`` per statement: ``BANKACCTFROM`` (the provider as ``BANKID``, the short
code as ``ACCTID``), ``BANKTRANLIST`` with one ``STMTTRN`` per entry, and ``LEDGERBAL``
(the closing balance). ``FITID`` is the receipt, suffixed for the rows that share it (an
M-Pesa charge: ``SE61D4E5F6-CHG``), since FITID must be unique within an account.
"""

from __future__ import annotations

import hashlib
import unicodedata
from datetime import date, datetime, time
from typing import ClassVar
from xml.sax.saxutils import escape

from lxml import etree

from ..model import Direction, Entry, Transaction
from ._common import (
    DEFAULT_TIMEZONE,
    Checked,
    check_balance_after,
    check_statement,
    choose,
    describe,
    entry_id,
    money,
    option_error,
    zone,
)
from .base import Statement

VERSIONS = ("220", "102")
ACCOUNT_TYPES = ("CHECKING", "SAVINGS", "MONEYMRKT", "CREDITLINE")
NAME_LENGTH = 32
MEMO_LENGTH = 255


class OfxEncoder:
    """Statement encoder for OFX.

    Options: ``version`` (``"220"``: OFX 2.2 XML, or ``"102"``: OFX 1.0.2 SGML),
    ``timezone`` (for ``DTPOSTED`` and the statement dates, default ``Africa/Nairobi``),
    ``bank_id`` (``BANKID``, default the provider in capitals), ``account_type``
    (``CHECKING`` by default).
    """

    name: ClassVar[str] = "ofx"
    media_type: ClassVar[str] = "application/x-ofx"

    def __init__(
        self,
        version: str | int = "220",
        timezone: str = DEFAULT_TIMEZONE,
        bank_id: str | None = None,
        account_type: str = "CHECKING",
    ) -> None:
        self.version = choose(self.name, "version", str(version), VERSIONS)
        self.tz = zone(self.name, timezone)
        if bank_id is not None and not 0 < len(bank_id) <= 9:
            raise option_error(self.name, "bank_id", "must be 1 to 9 characters")
        self.bank_id = bank_id
        self.account_type = choose(self.name, "account_type", account_type, ACCOUNT_TYPES)

    def encode_statement(self, statement: Statement) -> bytes:
        checked = check_statement(statement, self.tz)
        check_balance_after(checked)
        ofx = self._tree(checked)
        if self.version == "102":
            return _sgml(ofx)
        header = (
            b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n'
            b'<?OFX OFXHEADER="200" VERSION="220" SECURITY="NONE" OLDFILEUID="NONE" '
            b'NEWFILEUID="NONE"?>\n'
        )
        return header + etree.tostring(ofx, encoding="UTF-8", pretty_print=True)

    def _tree(self, checked: Checked) -> etree._Element:
        statement = checked.statement
        currency = statement.currency
        ofx = etree.Element("OFX")
        sonrs = _add(_add(ofx, "SIGNONMSGSRSV1"), "SONRS")
        _status(sonrs)
        _add(sonrs, "DTSERVER", self._datetime(statement.created_at))
        _add(sonrs, "LANGUAGE", "ENG")
        trnrs = _add(_add(ofx, "BANKMSGSRSV1"), "STMTTRNRS")
        uid = f"{statement.account}-{statement.period_start}-{statement.period_end}"
        _add(trnrs, "TRNUID", hashlib.sha256(uid.encode()).hexdigest()[:32])
        _status(trnrs)
        stmtrs = _add(trnrs, "STMTRS")
        _add(stmtrs, "CURDEF", currency)
        account = _add(stmtrs, "BANKACCTFROM")
        _add(account, "BANKID", self.bank_id or _clip(statement.provider.upper(), 9))
        _add(account, "ACCTID", statement.account)
        _add(account, "ACCTTYPE", self.account_type)
        tranlist = _add(stmtrs, "BANKTRANLIST")
        _add(tranlist, "DTSTART", self._day(statement.period_start, time(0, 0)))
        _add(tranlist, "DTEND", self._day(statement.period_end, time(23, 59, 59)))
        for txn in statement.entries:
            tranlist.append(self._transaction(txn, currency))
        ledger = _add(stmtrs, "LEDGERBAL")
        _add(ledger, "BALAMT", _signed(money(checked.closing, currency), checked.closing < 0))
        _add(ledger, "DTASOF", self._day(statement.period_end, time(23, 59, 59)))
        return ofx

    def _transaction(self, txn: Transaction, currency: str) -> etree._Element:
        stmttrn = etree.Element("STMTTRN")
        _add(stmttrn, "TRNTYPE", _trntype(txn))
        assert txn.occurred_at is not None  # check_statement refused it otherwise
        _add(stmttrn, "DTPOSTED", self._datetime(txn.occurred_at))
        debit = txn.direction is Direction.DEBIT
        _add(stmttrn, "TRNAMT", _signed(money(txn.amount, currency, receipt=txn.receipt), debit))
        _add(stmttrn, "FITID", entry_id(txn))
        party = txn.counterparty
        name = party.name if party and party.name else describe(txn)
        _add(stmttrn, "NAME", _clip(name, NAME_LENGTH))
        memo = txn.reference or describe(txn)
        _add(stmttrn, "MEMO", _clip(memo, MEMO_LENGTH))
        return stmttrn

    def _datetime(self, moment: datetime) -> str:
        """``20240506210559.000[+3:EAT]``: local time, its offset and zone name."""
        local = moment.astimezone(self.tz)
        offset = local.utcoffset()
        hours = 0.0 if offset is None else offset.total_seconds() / 3600
        label = f"{hours:+g}"
        zone_name = local.tzname() or ""
        suffix = f"[{label}:{zone_name}]" if zone_name.isalpha() else f"[{label}]"
        return f"{local:%Y%m%d%H%M%S}.{local.microsecond // 1000:03d}{suffix}"

    def _day(self, day: date, at: time) -> str:
        return self._datetime(datetime.combine(day, at, self.tz))


def _trntype(txn: Transaction) -> str:
    if txn.entry is Entry.CHARGE:
        return "FEE" if txn.direction is Direction.DEBIT else "CREDIT"
    if txn.entry in (Entry.TRANSFER, Entry.SETTLEMENT):
        return "XFER"
    if txn.entry is Entry.DEPOSIT and txn.direction is Direction.CREDIT:
        return "DEP"
    if txn.entry is Entry.WITHDRAWAL and txn.direction is Direction.DEBIT:
        return "CASH"
    return "CREDIT" if txn.direction is Direction.CREDIT else "DEBIT"


def _signed(text: str, negative: bool) -> str:
    return f"-{text}" if negative and text.strip("0.") else text


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip()


def _add(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, tag)
    if text is not None:
        child.text = text
    return child


def _status(parent: etree._Element) -> None:
    status = _add(parent, "STATUS")
    _add(status, "CODE", "0")
    _add(status, "SEVERITY", "INFO")


_SGML_HEADER = (
    "OFXHEADER:100\r\nDATA:OFXSGML\r\nVERSION:102\r\nSECURITY:NONE\r\nENCODING:USASCII\r\n"
    "CHARSET:1252\r\nCOMPRESSION:NONE\r\nOLDFILEUID:NONE\r\nNEWFILEUID:NONE\r\n\r\n"
)


def _sgml(ofx: etree._Element) -> bytes:
    """OFX 1.0.2: leaf elements unclosed, aggregates closed, text in Windows-1252."""
    lines: list[str] = []

    def walk(element: etree._Element) -> None:
        if len(element):
            lines.append(f"<{element.tag}>")
            for child in element:
                walk(child)
            lines.append(f"</{element.tag}>")
        else:
            lines.append(f"<{element.tag}>{escape(element.text or '')}")

    walk(ofx)
    text = _SGML_HEADER + "\r\n".join(lines) + "\r\n"
    return text.encode("cp1252", errors="strict") if _cp1252(text) else _to_cp1252(text)


def _cp1252(text: str) -> bool:
    try:
        text.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def _to_cp1252(text: str) -> bytes:
    """Characters Windows-1252 lacks: their base letter (``ő``→``o``), else ``?``."""
    out = []
    for char in text:
        try:
            out.append(char.encode("cp1252"))
        except UnicodeEncodeError:
            base = unicodedata.normalize("NFKD", char).encode("ascii", "ignore")
            out.append(base or b"?")
    return b"".join(out)
