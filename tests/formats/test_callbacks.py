"""The callback formats (STK, Result, K2, legacy Kopo Kopo, Airtel, MoMo) against the
reference samples, auto-detection of every sample, and broken or unusual bodies."""

from __future__ import annotations

import io
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pesabridge.formats import detect_format, get_parser
from pesabridge.formats.base import FailedAttempt, Observation, ParseItem, Reject
from pesabridge.model import MsisdnKind

# sample -> format; every sample in the shared folder, statements and C2B included.
SAMPLES = {
    "daraja/stk_callback_success.json": "daraja-stk",
    "daraja/stk_callback_failure.json": "daraja-stk",
    "daraja/b2c_result.json": "daraja-result",
    "daraja/reversal_result.json": "daraja-result",
    "kopokopo/k2_buygoods_transaction_received.json": "kopokopo-webhook",
    "kopokopo/k2_buygoods_transaction_reversed.json": "kopokopo-webhook",
    "kopokopo/legacy_notification.form": "kopokopo-legacy",
    "airtel/callback.json": "airtel-callback",
    "mtn/momo_callback_successful.json": "mtn-momo-callback",
    "mtn/momo_callback_failed.json": "mtn-momo-callback",
}
OTHER_SAMPLES = {
    "daraja/c2b_confirmation_v1_hashed.json": "daraja-c2b",
    "daraja/c2b_confirmation_v2_masked.json": "daraja-c2b",
    "daraja/c2b_confirmation_legacy_plain.json": "daraja-c2b",
    "daraja/c2b_validation_request.json": "daraja-c2b",
    "mpesa-statement/ORG_600977_Utility Account_Completed_20240507070000.csv": "mpesa-statement",
    "mpesa-statement/ORG_600977_Utility Account_Completed_20240507070000.xlsx": "mpesa-statement",
    "mpesa-statement/ORG_600978_Utility Account_Completed_20240508063000.csv": "mpesa-statement",
}
CONTENT_TYPES = {"kopokopo-legacy": "application/x-www-form-urlencoded"}

STK_OK: dict[str, Any] = {
    "Body": {
        "stkCallback": {
            "MerchantRequestID": "29115-34620561-1",
            "CheckoutRequestID": "ws_CO_191220191020363925",
            "ResultCode": 0,
            "ResultDesc": "The service request is processed successfully.",
            "CallbackMetadata": {
                "Item": [
                    {"Name": "Amount", "Value": 1},
                    {"Name": "MpesaReceiptNumber", "Value": "NLJ7RT61SV"},
                    {"Name": "TransactionDate", "Value": 20191219102115},
                    {"Name": "PhoneNumber", "Value": 254708374149},
                ]
            },
        }
    }
}
B2C_OK: dict[str, Any] = {
    "Result": {
        "ResultType": 0,
        "ResultCode": 0,
        "ResultDesc": "The service request is processed successfully.",
        "OriginatorConversationID": "53e3-4aa8",
        "ConversationID": "AG_20240706_2010364430d9bbdaf872",
        "TransactionID": "SG632NMUAB",
        "ResultParameters": {
            "ResultParameter": [
                {"Key": "TransactionAmount", "Value": 10},
                {"Key": "TransactionReceipt", "Value": "SG632NMUAB"},
                {"Key": "ReceiverPartyPublicName", "Value": "254705912645 - NICHOLAS SONGOK"},
                {"Key": "TransactionCompletedDateTime", "Value": "06.07.2024 22:48:52"},
                {"Key": "B2CUtilityAccountAvailableFunds", "Value": "8959269.60"},
            ]
        },
        "ReferenceData": {"ReferenceItem": {"Key": "QueueTimeoutURL", "Value": "https://x"}},
    }
}
K2_OK: dict[str, Any] = {
    "topic": "buygoods_transaction_received",
    "id": "6f1c2a9e",
    "created_at": "2024-05-06T14:05:12+03:00",
    "event": {
        "type": "Buygoods Transaction",
        "resource": {
            "amount": "2350.0",
            "currency": "KES",
            "reference": "SE56P4TX8R",
            "till_number": "512345",
            "sender_phone_number": "+254722000555",
            "origination_time": "2024-05-06T14:05:10+03:00",
            "sender_first_name": "Daniel",
            "sender_middle_name": None,
            "sender_last_name": "Wekesa",
        },
    },
}
LEGACY_FORM = (
    "service_name=MPESA&business_number=512900&transaction_reference=KX52LM91QP"
    "&internal_transaction_id=48213&transaction_timestamp=2016-08-09T11%3A42%3A03Z"
    "&transaction_type=Paybill&account_number=0042-B&sender_phone=%2B254711000222"
    "&first_name=Mary&middle_name=W&last_name=Kamau&amount=1750&currency=KES"
    "&signature=WsjcKfW7kRnRFDwe7tmmn1WTFXQ%3D"
)
AIRTEL_OK: dict[str, Any] = {
    "transaction": {
        "id": "BBZMiscxy",
        "message": "Paid UGX 5,000 to TECHNOLOGIES LIMITED Charge UGX 140, Trans ID MP2106.",
        "status_code": "TS",
        "airtel_money_id": "MP210603.1234.L06941",
    },
    "hash": "zITV",
}
MOMO_OK: dict[str, Any] = {
    "amount": 100,
    "currency": "UGX",
    "financialTransactionId": 23503452,
    "externalId": 947354,
    "payer": {"partyIdType": "MSISDN", "partyId": 4656473839},
    "status": "SUCCESSFUL",
}


def expected(samples_dir: Path, sample: str) -> list[dict[str, Any]]:
    text = (samples_dir / "expected" / f"{sample}.jsonl").read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def transactions(items: list[ParseItem]) -> list[dict[str, Any]]:
    return [i.transaction.to_dict() for i in items if isinstance(i, Observation)]


def body_items(fmt: str, data: Any, content_type: str | None = None) -> list[ParseItem]:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return get_parser(fmt).parse_body(raw, "req-1", content_type)  # type: ignore[attr-defined,no-any-return]


def one(fmt: str, data: Any, content_type: str | None = None) -> ParseItem:
    result = body_items(fmt, data, content_type)
    assert len(result) == 1, result
    return result[0]


def txn(fmt: str, data: Any, content_type: str | None = None) -> dict[str, Any]:
    item = one(fmt, data, content_type)
    assert isinstance(item, Observation), item
    return item.transaction.to_dict()


def rejected(fmt: str, data: Any, content_type: str | None = None) -> Reject:
    item = one(fmt, data, content_type)
    assert isinstance(item, Reject), item
    return item


def failed(fmt: str, data: Any) -> FailedAttempt:
    item = one(fmt, data)
    assert isinstance(item, FailedAttempt), item
    return item


def changed(base: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``base`` with ``path`` (dots, ``[i]``) set, or deleted for ``...``."""
    data = json.loads(json.dumps(base))
    keys: list[str | int] = []
    for part in path.split("."):
        name, _, index = part.partition("[")
        keys.append(name)
        if index:
            keys.append(int(index.rstrip("]")))
    target = data
    for key in keys[:-1]:
        target = target[key]
    if value is ...:
        del target[keys[-1]]
    else:
        target[keys[-1]] = value
    return data  # type: ignore[no-any-return]


# --- the samples ------------------------------------------------------------------


@pytest.mark.parametrize(("sample", "fmt"), SAMPLES.items())
def test_every_sample_yields_exactly_its_expected_transactions(
    samples_dir: Path, sample: str, fmt: str
) -> None:
    raw = (samples_dir / sample).read_bytes()
    want = expected(samples_dir, sample)
    from_file = list(get_parser(fmt).parse(io.BytesIO(raw), Path(sample).name))
    from_body = body_items(fmt, raw, CONTENT_TYPES.get(fmt))
    for got in (from_file, from_body):
        assert transactions(got) == want
        assert not [i for i in got if isinstance(i, Reject)], got
        assert all(i.raw == raw for i in got if isinstance(i, Observation | FailedAttempt))
        assert len(got) == 1  # one body, one outcome
    assert from_body[0].source == "req-1"


@pytest.mark.parametrize(("sample", "fmt"), (SAMPLES | OTHER_SAMPLES).items())
def test_auto_detection_picks_the_right_format(samples_dir: Path, sample: str, fmt: str) -> None:
    path = samples_dir / sample
    parser = detect_format(path.read_bytes()[:65536], path.name)
    assert parser is not None
    assert parser.name == fmt


def test_signatures_are_not_detected_as_anything(samples_dir: Path) -> None:
    for path in (samples_dir / "kopokopo").glob("*.sig"):
        assert detect_format(path.read_bytes(), path.name) is None


def test_failed_samples_are_failed_attempts_with_their_request_ids(samples_dir: Path) -> None:
    stk = failed("daraja-stk", (samples_dir / "daraja/stk_callback_failure.json").read_bytes())
    assert (stk.provider, stk.request_id, stk.code, stk.reason) == (
        "mpesa",
        "ws_CO_21072024125243250722943992",
        "1032",
        "Request cancelled by user",
    )
    momo = failed("mtn-momo-callback", (samples_dir / "mtn/momo_callback_failed.json").read_bytes())
    assert (momo.provider, momo.request_id, momo.code, momo.reason) == (
        "mtn-momo",
        "04822b2a-0896-4612-9e9e-15ce749b7883",
        "INTERNAL_PROCESSING_ERROR",
        "INTERNAL_PROCESSING_ERROR",
    )


def test_a_json_array_file_yields_one_item_per_body_with_indexed_paths() -> None:
    bad = changed(STK_OK, "Body.stkCallback.CallbackMetadata.Item[0].Value", "x")
    data = json.dumps([STK_OK, bad, 7]).encode()
    got = list(get_parser("daraja-stk").parse(io.BytesIO(data), "batch.json"))
    assert isinstance(got[0], Observation)
    assert json.loads(got[0].raw)["Body"]["stkCallback"]["ResultCode"] == 0
    assert isinstance(got[1], Reject)
    assert got[1].field == "[1].Body.stkCallback.CallbackMetadata.Item[0].Value"
    assert isinstance(got[2], Reject)
    assert got[2].field == "[2]"


@pytest.mark.parametrize("fmt", sorted(set(SAMPLES.values()) | {"daraja-c2b"}))
@pytest.mark.parametrize(
    "body", [b"", b"{", b"\xff\xfe", b"[]", b"null", b'"text"', b"42", b"{}", b"[[[[" * 5000]
)
def test_garbage_is_rejected_never_raised(fmt: str, body: bytes) -> None:
    got = get_parser(fmt).parse_body(body, "req-9")  # type: ignore[attr-defined]
    assert len(got) == 1, got
    assert isinstance(got[0], Reject), got
    assert got[0].raw == body
    assert got[0].source == "req-9"


def test_nan_is_not_a_number() -> None:
    bad = json.dumps(MOMO_OK).replace("100", "NaN").encode()
    assert rejected("mtn-momo-callback", bad).reason.startswith("not valid JSON")


# --- daraja-stk ---------------------------------------------------------------------


def test_stk_items_are_matched_by_name_not_position() -> None:
    items = STK_OK["Body"]["stkCallback"]["CallbackMetadata"]["Item"]
    shuffled = changed(STK_OK, "Body.stkCallback.CallbackMetadata.Item", list(reversed(items)))
    with_balance = changed(
        shuffled, "Body.stkCallback.CallbackMetadata.Item", [{"Name": "Balance"}, *items]
    )
    assert (
        txn("daraja-stk", shuffled) == txn("daraja-stk", STK_OK) == txn("daraja-stk", with_balance)
    )
    assert txn("daraja-stk", STK_OK)["amount"] == "1.00"


def test_stk_result_code_as_string_zero_is_success() -> None:
    assert txn("daraja-stk", changed(STK_OK, "Body.stkCallback.ResultCode", "0"))["receipt"] == (
        "NLJ7RT61SV"
    )


@pytest.mark.parametrize("code", [1032, "1032", 1037, "2001", "SFC_IC0003"])
def test_stk_non_zero_result_code_is_a_failed_attempt_even_with_metadata(code: Any) -> None:
    attempt = failed("daraja-stk", changed(STK_OK, "Body.stkCallback.ResultCode", code))
    assert (attempt.request_id, attempt.code) == ("ws_CO_191220191020363925", str(code))


def test_stk_phone_is_optional_and_a_string_phone_is_kept() -> None:
    items = STK_OK["Body"]["stkCallback"]["CallbackMetadata"]["Item"][:3]
    no_phone = changed(STK_OK, "Body.stkCallback.CallbackMetadata.Item", items)
    assert txn("daraja-stk", no_phone)["counterparty"] is None
    hashed = changed(STK_OK, "Body.stkCallback.CallbackMetadata.Item[3].Value", "0d1f2e")
    assert txn("daraja-stk", hashed)["counterparty"]["msisdn_kind"] == MsisdnKind.HASHED


def test_stk_single_item_object_is_accepted_but_needs_the_rest() -> None:
    single = changed(
        STK_OK, "Body.stkCallback.CallbackMetadata.Item", {"Name": "Amount", "Value": 1}
    )
    reject = rejected("daraja-stk", single)
    assert reject.field == "Body.stkCallback.CallbackMetadata.Item"
    assert "MpesaReceiptNumber" in reject.reason


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("Body", ..., "Body"),
        ("Body", [], "Body"),
        ("Body.stkCallback", ..., "Body.stkCallback"),
        ("Body.stkCallback.ResultCode", ..., "Body.stkCallback.ResultCode"),
        ("Body.stkCallback.ResultCode", True, "Body.stkCallback.ResultCode"),
        ("Body.stkCallback.ResultCode", 0.0, "Body.stkCallback.ResultCode"),
        ("Body.stkCallback.CallbackMetadata", ..., "Body.stkCallback.CallbackMetadata"),
        ("Body.stkCallback.CallbackMetadata.Item", "x", "Body.stkCallback.CallbackMetadata.Item"),
        (
            "Body.stkCallback.CallbackMetadata.Item[0]",
            5,
            "Body.stkCallback.CallbackMetadata.Item[0]",
        ),
        (
            "Body.stkCallback.CallbackMetadata.Item[0].Value",
            ...,
            "Body.stkCallback.CallbackMetadata.Item",
        ),
        (
            "Body.stkCallback.CallbackMetadata.Item[0].Value",
            "one",
            "Body.stkCallback.CallbackMetadata.Item[0].Value",
        ),
        (
            "Body.stkCallback.CallbackMetadata.Item[0].Value",
            1.005,
            "Body.stkCallback.CallbackMetadata.Item[0].Value",
        ),
        (
            "Body.stkCallback.CallbackMetadata.Item[0].Value",
            -1,
            "Body.stkCallback.CallbackMetadata.Item[0].Value",
        ),
        (
            "Body.stkCallback.CallbackMetadata.Item[1].Value",
            {"a": 1},
            "Body.stkCallback.CallbackMetadata.Item[1].Value",
        ),
        (
            "Body.stkCallback.CallbackMetadata.Item[2].Value",
            20191232102115,
            "Body.stkCallback.CallbackMetadata.Item[2].Value",
        ),
        (
            "Body.stkCallback.CallbackMetadata.Item[2].Value",
            "2019-12-19",
            "Body.stkCallback.CallbackMetadata.Item[2].Value",
        ),
        (
            "Body.stkCallback.CallbackMetadata.Item[1].Name",
            "Amount",
            "Body.stkCallback.CallbackMetadata.Item[1].Name",
        ),
        (
            "Body.stkCallback.CallbackMetadata.Item[1].Name",
            None,
            "Body.stkCallback.CallbackMetadata.Item[1].Name",
        ),
    ],
)
def test_stk_bad_bodies_name_the_json_path(path: str, value: Any, field: str) -> None:
    reject = rejected("daraja-stk", changed(STK_OK, path, value))
    assert reject.field == field, reject
    assert reject.source == "req-1"


# --- daraja-result ------------------------------------------------------------------


def test_result_b2c_with_array_or_object_reference_item() -> None:
    as_array = changed(
        B2C_OK, "Result.ReferenceData.ReferenceItem", [{"Key": "QueueTimeoutURL", "Value": "x"}]
    )
    no_ref = changed(B2C_OK, "Result.ReferenceData", ...)
    got = txn("daraja-result", B2C_OK)
    assert got == txn("daraja-result", as_array) == txn("daraja-result", no_ref)
    assert (got["entry"], got["direction"], got["amount"], got["occurred_at"]) == (
        "payout",
        "debit",
        "10.00",
        "2024-07-06T19:48:52Z",
    )
    assert got["counterparty"]["name"] == "NICHOLAS SONGOK"
    assert got["reference"] == "53e3-4aa8"


def test_result_codes_as_strings_and_parameters_by_name() -> None:
    params = B2C_OK["Result"]["ResultParameters"]["ResultParameter"]
    data = changed(B2C_OK, "Result.ResultCode", "0")
    data = changed(data, "Result.ResultType", "0")
    data = changed(data, "Result.ResultParameters.ResultParameter", list(reversed(params)))
    assert txn("daraja-result", data) == txn("daraja-result", B2C_OK)


def test_result_receipt_falls_back_to_transaction_id_and_key_without_value_is_absent() -> None:
    data = changed(
        B2C_OK, "Result.ResultParameters.ResultParameter[1]", {"Key": "TransactionReceipt"}
    )
    data = changed(
        data,
        "Result.ResultParameters.ResultParameter[4]",
        {"Key": "B2CUtilityAccountAvailableFunds"},
    )
    got = txn("daraja-result", data)
    assert got["receipt"] == "SG632NMUAB"
    assert got["balance_after"] is None


def test_result_non_zero_code_is_a_failed_attempt_with_the_conversation_id() -> None:
    data = changed(B2C_OK, "Result.ResultCode", 2001)
    data = changed(data, "Result.ResultDesc", "The initiator information is invalid.")
    data = changed(data, "Result.ResultParameters", ...)
    attempt = failed("daraja-result", data)
    assert (attempt.request_id, attempt.code, attempt.reason) == (
        "AG_20240706_2010364430d9bbdaf872",
        "2001",
        "The initiator information is invalid.",
    )
    assert failed("daraja-result", changed(B2C_OK, "Result.ResultCode", "SFC_IC0003")).code == (
        "SFC_IC0003"
    )


@pytest.mark.parametrize(
    "parameters",
    [
        {"Key": "AccountBalance", "Value": "Working Account|KES|46713.00|46713.00|0.00|0.00"},
        [
            {"Key": "ReceiptNo", "Value": "LHG31AA5TX"},
            {"Key": "TransactionStatus", "Value": "Completed"},
            {"Key": "Amount", "Value": 300},
        ],
    ],
    ids=["account-balance", "transaction-status"],
)
def test_result_queries_move_no_money_and_yield_nothing(parameters: Any) -> None:
    data = changed(B2C_OK, "Result.ResultParameters.ResultParameter", parameters)
    assert body_items("daraja-result", data) == []


def test_result_unknown_kind_is_rejected_not_dropped() -> None:
    data = changed(B2C_OK, "Result.ResultParameters", ...)
    assert rejected("daraja-result", data).field == "Result.ResultParameters"
    b2b = changed(
        B2C_OK, "Result.ResultParameters.ResultParameter", {"Key": "Amount", "Value": "5.00"}
    )
    assert rejected("daraja-result", b2b).field == "Result.ResultParameters"


def test_result_reversal_takes_account_balance_and_original(samples_dir: Path) -> None:
    data = json.loads((samples_dir / "daraja/reversal_result.json").read_text())
    params = data["Result"]["ResultParameters"]["ResultParameter"]
    params[0]["Value"] = "Utility Account|KES|not-a-number|0|0|0"
    assert rejected("daraja-result", data).field == (
        "Result.ResultParameters.ResultParameter[0].Value"
    )
    params[0]["Value"] = "Utility Account|KES|10.00|10.00|0.00|0.00"
    assert txn("daraja-result", data)["balance_after"] == "10.00"
    del params[3]  # without OriginalTransactionID it is no known kind of result
    assert rejected("daraja-result", data).field == "Result.ResultParameters"


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("Result", ..., "Result"),
        ("Result.ResultCode", ..., "Result.ResultCode"),
        ("Result.ResultCode", None, "Result.ResultCode"),
        ("Result.ResultCode", [0], "Result.ResultCode"),
        ("Result.ResultParameters", "x", "Result.ResultParameters"),
        ("Result.ResultParameters.ResultParameter", 3, "Result.ResultParameters.ResultParameter"),
        (
            "Result.ResultParameters.ResultParameter[0].Value",
            "ten",
            "Result.ResultParameters.ResultParameter[0].Value",
        ),
        (
            "Result.ResultParameters.ResultParameter[3].Value",
            "31.02.2024 10:00:00",
            "Result.ResultParameters.ResultParameter[3].Value",
        ),
        (
            "Result.ResultParameters.ResultParameter[3].Value",
            "2024-07-06 22:48:52",
            "Result.ResultParameters.ResultParameter[3].Value",
        ),
        ("Result.ResultParameters.ResultParameter[3]", {"Key": "X"}, "Result.ResultParameters"),
        (
            "Result.ResultParameters.ResultParameter[2].Key",
            "TransactionAmount",
            "Result.ResultParameters.ResultParameter[2].Key",
        ),
    ],
)
def test_result_bad_bodies_name_the_json_path(path: str, value: Any, field: str) -> None:
    assert rejected("daraja-result", changed(B2C_OK, path, value)).field == field


def test_result_b2c_compact_time_is_accepted() -> None:
    data = changed(B2C_OK, "Result.ResultParameters.ResultParameter[3].Value", 20240706224852)
    assert txn("daraja-result", data)["occurred_at"] == "2024-07-06T19:48:52Z"


# --- kopokopo-webhook ---------------------------------------------------------------


def test_k2_spellings_null_name_parts_and_hashed_phone() -> None:
    got = txn("kopokopo-webhook", K2_OK)
    assert got["counterparty"] == {
        "msisdn": "+254722000555",
        "msisdn_kind": "plain",
        "name": "Daniel Wekesa",
    }
    only_hash = changed(K2_OK, "event.resource.sender_phone_number", ...)
    only_hash["event"]["resource"]["hashed_sender_phone"] = "3091dba898ac0891"
    assert txn("kopokopo-webhook", only_hash)["counterparty"] == {
        "msisdn": "3091dba898ac0891",
        "msisdn_kind": "hashed",
        "name": "Daniel Wekesa",
    }
    node_sdk = changed(K2_OK, "event.resource.sender_phone_number", ...)
    node_sdk["event"]["resource"]["sender_msisdn"] = "+254712345678"
    assert txn("kopokopo-webhook", node_sdk)["counterparty"]["msisdn"] == "+254712345678"


@pytest.mark.parametrize("amount", ["2350.0", "2350", "2,350.00", 2350, 2350.0])
def test_k2_amount_spellings(amount: Any) -> None:
    assert txn("kopokopo-webhook", changed(K2_OK, "event.resource.amount", amount))["amount"] == (
        "2350.00"
    )


def test_k2_b2b_m2m_settlement_and_customer_created() -> None:
    b2b = changed(K2_OK, "topic", "b2b_transaction_received")
    b2b["event"]["resource"] = {
        "reference": "KKPPLLMMNN",
        "origination_time": "2017-01-20T22:45:12.790Z",
        "sending_till": "119050",
        "amount": 3000,
        "currency": "KES",
        "till_number": "111222",
        "status": "Received",
    }
    got = txn("kopokopo-webhook", b2b)
    assert (got["entry"], got["account"], got["amount"], got["counterparty"]) == (
        "payment",
        "111222",
        "3000.00",
        None,
    )
    assert got["occurred_at"] == "2017-01-20T22:45:12.790000Z"
    m2m = changed(b2b, "topic", "m2m_transaction_received")
    del m2m["event"]["resource"]["till_number"]
    m2m["event"]["resource"]["sending_merchant"] = "Kings Landing Enterprises"
    got = txn("kopokopo-webhook", m2m)
    assert got["account"] is None
    assert got["counterparty"]["name"] == "Kings Landing Enterprises"
    settle = changed(b2b, "topic", "settlement_transfer_completed")
    settle["event"]["resource"]["transfer_time"] = "2018-01-21T22:45:12Z"
    got = txn("kopokopo-webhook", settle)
    assert (got["entry"], got["direction"], got["occurred_at"]) == (
        "settlement",
        "debit",
        "2018-01-21T22:45:12Z",
    )
    batch = changed(settle, "event.resource.reference", ...)
    batch["event"]["resource"]["disbursements"] = [
        {"amount": "1000.00", "transaction_reference": "LDH1", "status": "Transferred"},
        {"amount": "2000.00", "transaction_reference": "LDH2"},
    ]
    got_batch = transactions(body_items("kopokopo-webhook", batch))
    assert [(t["receipt"], t["amount"]) for t in got_batch] == [
        ("LDH1", "1000.00"),
        ("LDH2", "2000.00"),
    ]
    customer = {"topic": "customer_created", "event": {"resource": {"first_name": "Jane"}}}
    assert body_items("kopokopo-webhook", customer) == []


def test_k2_daraja_format_relay_with_either_third_party_spelling() -> None:
    relay = {
        "TransactionType": "Pay Bill",
        "TransID": "OJM6Q1W84K",
        "TransTime": "20201022104319",
        "TransAmount": "100.0",
        "BusinessShortCode": "514459",
        "BillRefNumber": "",
        "OrgAccountBalance": "1000.0",
        "ThirdPartyTransId": "TP-9",
        "MSISDN": "MjU0NzEyMzQ1Njc4",
        "FirstName": "Jane",
        "MiddleName": None,
        "LastName": "Doe",
    }
    item = one("kopokopo-webhook", relay)
    assert isinstance(item, Observation)
    got = item.transaction.to_dict()
    assert (got["provider"], got["receipt"], got["amount"], got["reference"]) == (
        "kopokopo",
        "OJM6Q1W84K",
        "100.00",
        None,
    )
    assert got["counterparty"] == {
        "msisdn": "MjU0NzEyMzQ1Njc4",
        "msisdn_kind": "hashed",
        "name": "Jane Doe",
    }
    assert item.transaction.extra["ThirdPartyTransId"] == "TP-9"
    other = {**relay, "ThirdPartyTransID": "TP-9"}
    del other["ThirdPartyTransId"]
    assert txn("kopokopo-webhook", other) == got


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("topic", ..., "topic"),
        ("topic", "card_transaction_received", "topic"),
        ("event", ..., "event"),
        ("event.resource", None, "event.resource"),
        ("event.resource", [], "event.resource"),
        ("event.resource.reference", "", "event.resource.reference"),
        ("event.resource.amount", "lots", "event.resource.amount"),
        ("event.resource.amount", "-5", "event.resource.amount"),
        ("event.resource.amount", "1.001", "event.resource.amount"),
        ("event.resource.amount", ..., "event.resource.amount"),
        ("event.resource.currency", "XYZ", "event.resource.currency"),
        (
            "event.resource.origination_time",
            "2024-05-06T14:05:10",
            "event.resource.origination_time",
        ),
        ("event.resource.origination_time", "yesterday", "event.resource.origination_time"),
        ("event.resource.sender_first_name", {"x": 1}, "event.resource.sender_first_name"),
    ],
)
def test_k2_bad_bodies_name_the_json_path(path: str, value: Any, field: str) -> None:
    assert rejected("kopokopo-webhook", changed(K2_OK, path, value)).field == field


# --- kopokopo-legacy ----------------------------------------------------------------


def test_legacy_form_and_json_bodies_agree_and_keep_the_signature_out() -> None:
    form = txn("kopokopo-legacy", LEGACY_FORM.encode(), "application/x-www-form-urlencoded")
    sniffed = txn("kopokopo-legacy", LEGACY_FORM.encode())
    from urllib.parse import parse_qsl

    fields: dict[str, Any] = dict(parse_qsl(LEGACY_FORM))
    fields["amount"] = 1750
    as_json = txn("kopokopo-legacy", fields, "application/json; charset=utf-8")
    assert form == sniffed == as_json
    assert form["occurred_at"] == "2016-08-09T11:42:03Z"
    item = one("kopokopo-legacy", LEGACY_FORM.encode())
    assert isinstance(item, Observation)
    assert "signature" not in item.transaction.extra
    assert "WsjcKfW7kRnRFDwe7tmmn1WTFXQ=" not in json.dumps(item.transaction.to_dict())


@pytest.mark.parametrize(
    ("form", "field"),
    [
        ("amount=1750&business_number=1", "transaction_reference"),
        (LEGACY_FORM.replace("amount=1750", "amount=abc"), "amount"),
        (LEGACY_FORM.replace("amount=1750", "amount="), "amount"),
        (
            LEGACY_FORM.replace("2016-08-09T11%3A42%3A03Z", "09%2F08%2F2016"),
            "transaction_timestamp",
        ),
        (LEGACY_FORM + "&amount=99", "amount"),
        ("not a form", None),
    ],
)
def test_legacy_bad_forms_name_the_field(form: str, field: str | None) -> None:
    assert rejected("kopokopo-legacy", form.encode()).field == field


def test_legacy_naive_timestamp_is_utc_and_plus_is_a_space() -> None:
    form = LEGACY_FORM.replace("2016-08-09T11%3A42%3A03Z", "2016-08-09+11%3A42%3A03")
    assert txn("kopokopo-legacy", form.encode())["occurred_at"] == "2016-08-09T11:42:03Z"


# --- airtel-callback ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("message", "amount", "currency"),
    [
        ("Paid UGX 5,000 to X", "5000", "UGX"),
        ("Paid UGX 5000.00 to X", "5000", "UGX"),
        ("Paid KES 12.5 to X", "12.50", "KES"),
        ("You have Paid TZS 1,000,000.00 to X", "1000000.00", "TZS"),
    ],
)
def test_airtel_amount_and_currency_come_from_the_message(
    message: str, amount: str, currency: str
) -> None:
    got = txn("airtel-callback", changed(AIRTEL_OK, "transaction.message", message))
    assert (got["amount"], got["currency"]) == (amount, currency)


def test_airtel_ugx_has_no_minor_units() -> None:
    reject = rejected(
        "airtel-callback", changed(AIRTEL_OK, "transaction.message", "Paid UGX 5,000.50 to X")
    )
    assert reject.field == "transaction.message"
    assert "UGX" in reject.reason


def test_airtel_tf_is_a_failed_attempt_and_tip_is_nothing() -> None:
    data = changed(AIRTEL_OK, "transaction.status_code", "TF")
    data = changed(data, "transaction.message", "Transaction failed: insufficient funds")
    data = changed(data, "transaction.airtel_money_id", ...)
    attempt = failed("airtel-callback", data)
    assert (attempt.provider, attempt.request_id, attempt.code, attempt.reason) == (
        "airtel",
        "BBZMiscxy",
        "TF",
        "Transaction failed: insufficient funds",
    )
    assert body_items("airtel-callback", changed(AIRTEL_OK, "transaction.status_code", "TIP")) == []


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("transaction", ..., "transaction"),
        ("transaction.status_code", ..., "transaction.status_code"),
        ("transaction.status_code", "XX", "transaction.status_code"),
        ("transaction.status_code", 1, "transaction.status_code"),
        ("transaction.airtel_money_id", ..., "transaction.airtel_money_id"),
        ("transaction.message", ..., "transaction.message"),
        ("transaction.message", "Thank you", "transaction.message"),
        ("transaction.message", "Paid XYZ 5 to X", "transaction.message"),
        ("transaction.id", [1], "transaction.id"),
    ],
)
def test_airtel_bad_bodies_name_the_json_path(path: str, value: Any, field: str) -> None:
    assert rejected("airtel-callback", changed(AIRTEL_OK, path, value)).field == field


# --- mtn-momo-callback --------------------------------------------------------------


@pytest.mark.parametrize("amount", [100, "100", "100.0", 100.0, "100.00"])
def test_momo_ugx_amount_spellings(amount: Any) -> None:
    got = txn("mtn-momo-callback", changed(MOMO_OK, "amount", amount))
    assert (got["amount"], got["receipt"], got["reference"]) == ("100", "23503452", "947354")


def test_momo_pending_is_nothing_and_reason_objects_are_read() -> None:
    assert body_items("mtn-momo-callback", changed(MOMO_OK, "status", "PENDING")) == []
    data = changed(MOMO_OK, "status", "FAILED")
    data["reason"] = {"code": "PAYER_NOT_FOUND", "message": "Payer not found"}
    attempt = failed("mtn-momo-callback", data)
    assert (attempt.request_id, attempt.code, attempt.reason) == (
        "947354",
        "PAYER_NOT_FOUND",
        "Payer not found",
    )


def test_momo_transfer_with_a_payee_is_a_payout() -> None:
    data = changed(MOMO_OK, "payer", ...)
    data["payee"] = {"partyIdType": "MSISDN", "partyId": "256772123456"}
    got = txn("mtn-momo-callback", data)
    assert (got["entry"], got["direction"], got["counterparty"]["msisdn"]) == (
        "payout",
        "debit",
        "256772123456",
    )


@pytest.mark.parametrize(
    ("path", "value", "field"),
    [
        ("status", ..., "status"),
        ("status", "WEIRD", "status"),
        ("financialTransactionId", ..., "financialTransactionId"),
        ("amount", "100.5", "amount"),
        ("amount", ..., "amount"),
        ("amount", True, "amount"),
        ("currency", ..., "currency"),
        ("currency", "UGXX", "currency"),
        ("payer", "256", "payer"),
        ("externalId", {"id": 1}, "externalId"),
    ],
)
def test_momo_bad_bodies_name_the_json_path(path: str, value: Any, field: str) -> None:
    assert rejected("mtn-momo-callback", changed(MOMO_OK, path, value)).field == field


# --- amounts round-trip -------------------------------------------------------------

KES = st.decimals(min_value=0, max_value=10**9, places=2, allow_nan=False, allow_infinity=False)
UGX = st.integers(min_value=0, max_value=10**12)


@given(KES)
def test_stk_amount_round_trips_as_a_json_number(value: Decimal) -> None:
    body = json.dumps(STK_OK).replace('"Value": 1}', f'"Value": {value}}}', 1).encode()
    got = txn("daraja-stk", body)
    assert Decimal(got["amount"]) == value
    assert got["amount"] == f"{value:.2f}"


@given(UGX)
def test_momo_ugx_amount_round_trips_as_string_and_number(value: int) -> None:
    for spelled in (value, str(value), f"{value}.0"):
        got = txn("mtn-momo-callback", changed(MOMO_OK, "amount", spelled))
        assert got["amount"] == str(value)


@given(KES)
def test_k2_amount_round_trips_with_thousands_separators(value: Decimal) -> None:
    spelled = f"{value:,.2f}"
    got = txn("kopokopo-webhook", changed(K2_OK, "event.resource.amount", spelled))
    assert Decimal(got["amount"]) == value
