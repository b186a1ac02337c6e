"""Safaricom Daraja asynchronous ``Result`` callbacks into canonical transactions.

B2C payments, reversals, transaction status and account balance queries all post the
same envelope to the ResultURL::

    {"Result": {"ResultType": 0, "ResultCode": 0, "ResultDesc": "...",
      "OriginatorConversationID": "...", "ConversationID": "AG_...", "TransactionID": "...",
      "ResultParameters": {"ResultParameter": [{"Key": "TransactionAmount", "Value": 10}, ...]},
      "ReferenceData": {"ReferenceItem": {"Key": "QueueTimeoutURL", "Value": "..."}}}}

A non-zero ``ResultCode`` (number or string) is a :class:`FailedAttempt` whose
``request_id`` is the ``ConversationID``. With ``ResultCode`` 0, the kind of result is
told from the parameter keys, matched by name (``ResultParameter`` and ``ReferenceItem``
may be one object or an array; a ``Key`` without ``Value`` is absent):

- ``AccountBalance`` (balance query) or ``ReceiptNo`` / ``TransactionStatus`` (status
  query): no money moved, so no transaction (an empty list);
- ``OriginalTransactionID``: a reversal, ``reversal``/debit;
- ``TransactionReceipt`` or ``TransactionAmount``: a B2C payment, ``payout``/debit;
- anything else (B2B, tax remittance, a success without parameters): a :class:`Reject`
  naming ``Result.ResultParameters``, so it is kept rather than silently dropped.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, ClassVar

from ..model import CURRENCIES, Counterparty, Direction, Entry, Status, Transaction
from ._callback import (
    EAT_OFFSET,
    Bad,
    Failure,
    JsonCallbackParser,
    Mapped,
    amount,
    as_text,
    build,
    eat_compact,
    head_is_json,
    is_success,
    json_type,
    obj,
    result_code,
    text,
)

PROVIDER = "mpesa"
CURRENCY = "KES"
_B2C_TIME = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4}) (\d{1,2}):(\d{2}):(\d{2})")
_NO_MOVEMENT = ("AccountBalance", "ReceiptNo", "TransactionStatus")


def _parameters(result: dict[str, Any], prefix: str) -> dict[str, tuple[Any, str]]:
    """``Key`` -> (``Value``, its JSON path) for every parameter that has a value."""
    holder = result.get("ResultParameters")
    holder_path = prefix + "ResultParameters"
    if holder is None or holder == "":
        return {}
    if not isinstance(holder, dict):
        raise Bad(holder_path, f"must be an object, not {json_type(holder)}")
    entries = holder.get("ResultParameter")
    list_path = holder_path + ".ResultParameter"
    if entries is None:
        return {}
    if isinstance(entries, dict):
        pairs = [(entries, list_path)]
    elif isinstance(entries, list):
        pairs = [(e, f"{list_path}[{i}]") for i, e in enumerate(entries)]
    else:
        raise Bad(list_path, f"must be an object or an array, not {json_type(entries)}")
    found: dict[str, tuple[Any, str]] = {}
    for entry, path in pairs:
        if not isinstance(entry, dict):
            raise Bad(path, f"must be an object, not {json_type(entry)}")
        key = as_text(entry.get("Key"), path + ".Key")
        if not key or not key.strip():
            raise Bad(path + ".Key", "is missing")
        value = entry.get("Value")
        if value is None or (isinstance(value, str) and not value.strip()):
            continue
        if key.strip() in found:
            raise Bad(path + ".Key", f"{key.strip()!r} appears more than once")
        found[key.strip()] = (value, path + ".Value")
    return found


def _b2c_time(value: Any, path: str) -> datetime:
    """``dd.MM.yyyy HH:mm:ss`` (or ``YYYYMMDDHHmmss``) in East Africa Time, as UTC."""
    raw = as_text(value, path)
    if raw is None:
        raise Bad(path, "is missing")
    match = _B2C_TIME.fullmatch(raw.strip())
    if match is None:
        return eat_compact(value, path)
    day, month, year, hour, minute, second = (int(g) for g in match.groups())
    try:
        local = datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise Bad(path, f"{raw!r} is not a valid dd.MM.yyyy HH:mm:ss time") from None
    return local - EAT_OFFSET


def _public_name(value: Any, path: str) -> Counterparty | None:
    """``"254705912645 - NICHOLAS JOHN SONGOK"``: the number, then the name."""
    raw = as_text(value, path)
    if raw is None:
        return None
    number, dash, name = raw.partition(" - ")
    if not dash:
        bare = raw.strip()
        digits = bare.removeprefix("+")
        if digits.isascii() and digits.isdigit():
            return Counterparty.of(bare, None)
        return Counterparty.of(None, bare)
    return Counterparty.of(number, name)


def _money(found: dict[str, tuple[Any, str]], key: str, prefix: str) -> tuple[Decimal, str]:
    if key not in found:
        raise Bad(prefix + "ResultParameters", f"has no {key!r} parameter with a Value")
    value, path = found[key]
    return amount(value, path), path


def _balance(found: dict[str, tuple[Any, str]], key: str) -> tuple[Decimal | None, str]:
    if key not in found:
        return None, key
    value, path = found[key]
    return amount(value, path), path


def _account_balance(
    found: dict[str, tuple[Any, str]],
) -> tuple[Decimal | None, str | None, str]:
    """``"Utility Account|KES|7722179.62|7722179.62|0.00|0.00"``: balance and currency."""
    if "DebitAccountBalance" not in found:
        return None, None, "DebitAccountBalance"
    value, path = found["DebitAccountBalance"]
    raw = as_text(value, path) or ""
    fields = raw.split("|")
    if len(fields) < 3:
        raise Bad(path, f"{raw!r} is not 'account|currency|balance|...'")
    currency = fields[1].strip() or None
    return amount(fields[2], path), currency, path


def _transaction(
    result: dict[str, Any], found: dict[str, tuple[Any, str]], prefix: str
) -> Transaction:
    reference = text(result, "OriginatorConversationID", prefix)
    extra = {
        key: value
        for key in ("ConversationID", "OriginatorConversationID", "ResultType")
        if (value := text(result, key, prefix))
    }
    if "OriginalTransactionID" in found:
        receipt = text(result, "TransactionID", prefix)
        if receipt is None:
            raise Bad(prefix + "TransactionID", "is missing")
        value, time_path = found.get("TransCompletedTime", (None, prefix + "ResultParameters"))
        if value is None:
            raise Bad(time_path, "has no 'TransCompletedTime' parameter with a Value")
        original_value, original_path = found["OriginalTransactionID"]
        money, amount_path = _money(found, "Amount", prefix)
        balance, currency, balance_path = _account_balance(found)
        debit = found.get("DebitPartyPublicName")
        account = None
        if debit is not None:
            account_text = as_text(*debit)
            account = account_text.partition(" - ")[0].strip() or None if account_text else None
        credit = found.get("CreditPartyPublicName")
        return build(
            {
                "amount": amount_path,
                "balance_after": balance_path,
                "currency": balance_path,
                "occurred_at": time_path,
            },
            provider=PROVIDER,
            account=account,
            receipt=receipt.strip(),
            entry=Entry.REVERSAL,
            direction=Direction.DEBIT,
            amount=money,
            currency=currency if currency in CURRENCIES else CURRENCY,
            occurred_at=eat_compact(value, time_path),
            counterparty=_public_name(*credit) if credit else None,
            reference=reference,
            balance_after=balance,
            status=Status.COMPLETED,
            related_receipt=(as_text(original_value, original_path) or "").strip() or None,
            extra=extra,
        )
    receipt_value, receipt_path = found.get(
        "TransactionReceipt", (result.get("TransactionID"), prefix + "TransactionID")
    )
    receipt = as_text(receipt_value, receipt_path)
    if receipt is None or not receipt.strip():
        raise Bad(receipt_path, "is missing")
    money, amount_path = _money(found, "TransactionAmount", prefix)
    time_key = "TransactionCompletedDateTime"
    if time_key not in found:
        raise Bad(prefix + "ResultParameters", f"has no {time_key!r} parameter with a Value")
    time_value, time_path = found[time_key]
    balance, balance_path = _balance(found, "B2CUtilityAccountAvailableFunds")
    receiver = found.get("ReceiverPartyPublicName")
    return build(
        {"amount": amount_path, "balance_after": balance_path, "occurred_at": time_path},
        provider=PROVIDER,
        account=None,
        receipt=receipt.strip(),
        entry=Entry.PAYOUT,
        direction=Direction.DEBIT,
        amount=money,
        currency=CURRENCY,
        occurred_at=_b2c_time(time_value, time_path),
        counterparty=_public_name(*receiver) if receiver else None,
        reference=reference,
        balance_after=balance,
        status=Status.COMPLETED,
        extra=extra,
    )


def map_result(data: dict[str, Any], prefix: str) -> Mapped:
    """One decoded Result envelope: a transaction, a failure, nothing, or :class:`Bad`."""
    result = obj(data, "Result", prefix)
    prefix += "Result."
    code = result_code(result.get("ResultCode"), prefix + "ResultCode")
    if not is_success(code):
        request_id = text(result, "ConversationID", prefix) or text(
            result, "OriginatorConversationID", prefix
        )
        reason = text(result, "ResultDesc", prefix) or f"ResultCode {code}"
        return [Failure(request_id and request_id.strip(), code, reason.strip())]
    found = _parameters(result, prefix)
    if any(key in found for key in _NO_MOVEMENT):
        return []
    if not ({"OriginalTransactionID", "TransactionReceipt", "TransactionAmount"} & found.keys()):
        raise Bad(
            prefix + "ResultParameters",
            "not a B2C, reversal, account balance or transaction status result",
        )
    return [_transaction(result, found, prefix)]


class DarajaResultParser(JsonCallbackParser):
    """``--format daraja-result``: Daraja Result callbacks (one body, or a JSON array)."""

    name: ClassVar[str] = "daraja-result"
    provider: ClassVar[str] = PROVIDER

    def sniff(self, head: bytes, filename: str) -> bool:
        """JSON with a ``Result`` object carrying a ``ConversationID`` and a ``ResultCode``."""
        return (
            head_is_json(head)
            and b'"Result"' in head
            and b'"ConversationID"' in head
            and b'"ResultCode"' in head
        )

    def _map(self, data: dict[str, Any], prefix: str) -> Mapped:
        return map_result(data, prefix)
