"""An M-Pesa statement's columns: the header cells of every layout, as logical columns.

The portal (G2), its Excel re-save and the legacy 1G layout name the same columns
differently (``Receipt No.`` or ``Receipt``, ``A/C No.`` or ``Transaction Party
Details``); each name maps to one logical column, an index in the order the row mapper
unpacks a row. A header row without the ``REQUIRED`` columns rejects the whole file.
"""

from __future__ import annotations

# Logical columns, in the order the row mapper unpacks them.
RECEIPT, TIME, DETAILS, STATUS, PAID, WITHDRAWN = range(6)
BALANCE, REASON, OTHER, LINKED, REFERENCE, CURRENCY = range(6, 12)
COLUMNS: dict[str, int] = {
    "receipt no.": RECEIPT,
    "receipt no": RECEIPT,
    "receipt": RECEIPT,
    "completion time": TIME,
    "date": TIME,
    "details": DETAILS,
    "transaction status": STATUS,
    "status": STATUS,
    "paid in": PAID,
    "withdrawn": WITHDRAWN,
    "balance": BALANCE,
    "reason type": REASON,
    "transaction type": REASON,
    "other party info": OTHER,
    "linked transaction id": LINKED,
    "a/c no.": REFERENCE,
    "a/c no": REFERENCE,
    "transaction party details": REFERENCE,
    "currency": CURRENCY,
}
REQUIRED = {
    RECEIPT: "Receipt No.",
    TIME: "Completion Time",
    PAID: "Paid In",
    WITHDRAWN: "Withdrawn",
}
