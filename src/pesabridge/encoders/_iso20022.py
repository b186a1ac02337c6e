"""ISO 20022 building blocks shared by camt.053 and camt.054: schemas, entries, validation.

Elements below the document root are built *without* a namespace and written inside the
namespaced root by :func:`lxml.etree.xmlfile`: they inherit the default namespace, so a
100,000-entry statement is written one entry at a time with no ``xmlns`` repeated on
every entry, and never held as one DOM.
"""

from __future__ import annotations

import hashlib
import io
from datetime import date, datetime, time, tzinfo
from functools import cache
from importlib import resources
from pathlib import Path
from typing import BinaryIO

from lxml import etree

from ..model import Direction, Entry, Transaction
from ._common import describe, entry_id, is_reversal, money
from .base import EncodeError

VERSIONS = ("02", "08")
"""Message versions written: ``camt.05x.001.02`` (the one most banks still read) and ``.08``."""


def namespace(message: str, version: str) -> str:
    return f"urn:iso:std:iso:20022:tech:xsd:{message}.001.{version}"


@cache
def schema(message: str, version: str) -> etree.XMLSchema:
    """The official XSD for ``message`` (``camt.053``) and ``version``, compiled once."""
    name = f"{message}.001.{version}.xsd"
    source = resources.files("pesabridge.encoders").joinpath("schemas", "iso20022", name)
    with source.open("rb") as handle:
        return etree.XMLSchema(etree.parse(handle))


def schema_path(message: str, version: str) -> Path:
    """Where the XSD lies on disk (for other validators, e.g. ``xmlschema``)."""
    here = Path(__file__).resolve().parent
    return here / "schemas" / "iso20022" / f"{message}.001.{version}.xsd"


def validate(document: bytes | Path, message: str, version: str) -> None:
    """Validate against the official XSD while parsing, in constant memory.

    libxml2 validates as the parser goes (``iterparse(schema=...)``); each entry is
    discarded once read, so a large file never becomes a whole tree. An invalid document
    raises :class:`EncodeError` with the schema's own reason and line.
    """
    entry_tag = f"{{{namespace(message, version)}}}Ntry"
    stream: BinaryIO
    stream = io.BytesIO(document) if isinstance(document, bytes) else document.open("rb")
    try:
        for _event, element in etree.iterparse(
            stream,
            events=("end",),
            tag=entry_tag,
            schema=schema(message, version),
            resolve_entities=False,
            no_network=True,
            huge_tree=True,
        ):
            element.clear(keep_tail=True)
            parent = element.getparent()
            if parent is not None:
                while element.getprevious() is not None:
                    del parent[0]
    except etree.XMLSyntaxError as exc:
        raise EncodeError(
            f"not valid {message}.001.{version} (official XSD): {exc.msg}", field="document"
        ) from None
    finally:
        stream.close()


def add(parent: etree._Element, tag: str, text: str | None = None) -> etree._Element:
    child = etree.SubElement(parent, tag)
    if text is not None:
        child.text = text
    return child


def nested(parent: etree._Element, path: str, text: str) -> etree._Element:
    """``nested(e, "Id/Othr/Id", "600977")``: the chain of children, text on the last."""
    node = parent
    for tag in path.split("/"):
        node = etree.SubElement(node, tag)
    node.text = text
    return node


def amount(parent: etree._Element, tag: str, value: str, currency: str) -> None:
    element = add(parent, tag, value)
    element.set("Ccy", currency)


def iso_datetime(moment: datetime, tz: tzinfo) -> str:
    """``2024-05-07T07:00:00+03:00``: local time with its offset, whole seconds."""
    return moment.astimezone(tz).isoformat(timespec="seconds")


def day_start(day: date, tz: tzinfo) -> str:
    return datetime.combine(day, time(0, 0), tz).isoformat(timespec="seconds")


def day_end(day: date, tz: tzinfo) -> str:
    return datetime.combine(day, time(23, 59, 59), tz).isoformat(timespec="seconds")


def message_id(candidate: str) -> str:
    """A ``Max35Text`` id: ``candidate`` when it fits, else a digest of it."""
    if 0 < len(candidate) <= 35:
        return candidate
    return "PB" + hashlib.sha256(candidate.encode()).hexdigest()[:33]


def account(
    parent: etree._Element, account_id: str, provider: str, currency: str, holder: str | None
) -> None:
    """``<Acct>``: mobile money accounts have no IBAN, so ``Othr/Id`` holds the short code."""
    acct = add(parent, "Acct")
    othr = nested(acct, "Id/Othr/Id", account_id).getparent()
    assert othr is not None
    add(othr, "Issr", provider)
    add(acct, "Ccy", currency)
    if holder:
        nested(acct, "Ownr/Nm", holder)


# (entry, direction) -> ISO 20022 bank transaction code (domain, family, sub-family)
_CODES: dict[tuple[Entry, Direction], tuple[str, str, str]] = {
    (Entry.PAYMENT, Direction.CREDIT): ("PMNT", "RCDT", "DMCT"),
    (Entry.PAYMENT, Direction.DEBIT): ("PMNT", "ICDT", "DMCT"),
    (Entry.PAYOUT, Direction.DEBIT): ("PMNT", "ICDT", "DMCT"),
    (Entry.PAYOUT, Direction.CREDIT): ("PMNT", "RCDT", "DMCT"),
    (Entry.TRANSFER, Direction.CREDIT): ("PMNT", "RCDT", "BOOK"),
    (Entry.TRANSFER, Direction.DEBIT): ("PMNT", "ICDT", "BOOK"),
    (Entry.SETTLEMENT, Direction.CREDIT): ("PMNT", "RCDT", "BOOK"),
    (Entry.SETTLEMENT, Direction.DEBIT): ("PMNT", "ICDT", "BOOK"),
    (Entry.REVERSAL, Direction.DEBIT): ("PMNT", "RCDT", "RRTN"),
    (Entry.REVERSAL, Direction.CREDIT): ("PMNT", "ICDT", "RRTN"),
    (Entry.CHARGE, Direction.DEBIT): ("PMNT", "MDOP", "CHRG"),
    (Entry.CHARGE, Direction.CREDIT): ("PMNT", "MCOP", "CHRG"),
    (Entry.DEPOSIT, Direction.CREDIT): ("PMNT", "CNTR", "CDPT"),
    (Entry.DEPOSIT, Direction.DEBIT): ("PMNT", "CNTR", "CDPT"),
    (Entry.WITHDRAWAL, Direction.DEBIT): ("PMNT", "CNTR", "CWDL"),
    (Entry.WITHDRAWAL, Direction.CREDIT): ("PMNT", "CNTR", "CWDL"),
    (Entry.ADJUSTMENT, Direction.CREDIT): ("PMNT", "MCOP", "ADJT"),
    (Entry.ADJUSTMENT, Direction.DEBIT): ("PMNT", "MDOP", "ADJT"),
}


def bank_transaction_code(txn: Transaction) -> tuple[str, str, str]:
    return _CODES[(txn.entry, txn.direction)]


def entry(txn: Transaction, version: str, day: date, currency: str) -> etree._Element:
    """One ``<Ntry>`` (un-namespaced: it takes the document's default namespace).

    Dates are ``<Dt>`` (the business day), never ``<DtTm>``; the receipt is the account
    servicer's reference; the payer's reference is unstructured remittance information.
    """
    receipt = txn.receipt
    text = money(txn.amount, currency, receipt=receipt)
    indicator = "CRDT" if txn.direction is Direction.CREDIT else "DBIT"
    ntry = etree.Element("Ntry")
    add(ntry, "NtryRef", entry_id(txn))
    amount(ntry, "Amt", text, currency)
    add(ntry, "CdtDbtInd", indicator)
    if is_reversal(txn):
        # the entry's own direction, flagged: a DBIT reversal undoes an earlier credit
        add(ntry, "RvslInd", "true")
    if version == "02":
        add(ntry, "Sts", "BOOK")
    else:
        nested(ntry, "Sts/Cd", "BOOK")
    iso_day = day.isoformat()
    nested(ntry, "BookgDt/Dt", iso_day)
    nested(ntry, "ValDt/Dt", iso_day)
    add(ntry, "AcctSvcrRef", receipt)
    domain, family, sub_family = bank_transaction_code(txn)
    code = add(ntry, "BkTxCd")
    domn = add(code, "Domn")
    add(domn, "Cd", domain)
    fmly = add(domn, "Fmly")
    add(fmly, "Cd", family)
    add(fmly, "SubFmlyCd", sub_family)
    prtry = add(code, "Prtry")
    add(prtry, "Cd", txn.entry.value.upper())
    add(prtry, "Issr", txn.provider)

    details = nested(ntry, "NtryDtls/TxDtls/Refs/AcctSvcrRef", receipt)
    refs = details.getparent()
    assert refs is not None
    tx = refs.getparent()
    assert tx is not None
    if txn.related_receipt:
        prop = add(refs, "Prtry")
        add(prop, "Tp", "RELATED")
        add(prop, "Ref", txn.related_receipt)
    if version != "02":
        amount(tx, "Amt", text, currency)
        add(tx, "CdtDbtInd", indicator)
    party = txn.counterparty
    if party is not None and (party.name or party.msisdn):
        role = "Dbtr" if txn.direction is Direction.CREDIT else "Cdtr"
        parties = add(tx, "RltdPties")
        if party.name:
            nested(parties, f"{role}/Nm" if version == "02" else f"{role}/Pty/Nm", party.name)
        if party.msisdn:
            othr = nested(parties, f"{role}Acct/Id/Othr/Id", party.msisdn).getparent()
            assert othr is not None
            nested(othr, "SchmeNm/Prtry", "MSISDN")
    if txn.reference:
        nested(tx, "RmtInf/Ustrd", txn.reference)
    add(ntry, "AddtlNtryInf", describe(txn))
    return ntry
