"""ISO 8583: golden messages, round trips through pyiso8583 and through an independent
decoder written here from the standard, property tests, and refusals."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import iso8583
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pesabridge.encoders.base import EncodeError, MessageContext
from pesabridge.encoders.iso8583 import (
    InMemoryStanAllocator,
    Iso8583Encoder,
    builtin_spec_names,
    load_spec,
)
from pesabridge.encoders.iso8583.decode import decode_message, mask_account, mask_pan
from pesabridge.encoders.options import EncoderOptionsError
from pesabridge.encoders.registry import get_encoder
from pesabridge.model import Counterparty, Direction, Entry, Transaction, numeric_code
from tests.helpers import txn

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("PESABRIDGE_UPDATE_GOLDEN") == "1"
NOW = datetime(2024, 5, 6, 18, 6, 0, tzinfo=UTC)
NAIROBI = ZoneInfo("Africa/Nairobi")
SPECS = ["1987-ascii", "1987-binary", "1993"]

# --- an independent decoder, written from ISO 8583 (not from our YAML or pyiso8583) ---

# field -> fixed length, or ("LL"/"LLL", max); all ASCII.
FIELDS_1987: dict[int, int | tuple[str, int]] = {
    2: ("LL", 19),
    3: 6,
    4: 12,
    7: 10,
    11: 6,
    12: 6,
    13: 4,
    32: ("LL", 11),
    37: 12,
    39: 2,
    41: 8,
    42: 15,
    48: ("LLL", 999),
    49: 3,
    90: 42,
    102: ("LL", 28),
    103: ("LL", 28),
}
FIELDS_1993: dict[int, int | tuple[str, int]] = {
    **FIELDS_1987,
    12: 12,
    24: 3,
    39: 3,
    56: ("LL", 35),
}


def independent_decode(raw: bytes, spec: str) -> dict[str, str]:
    """MTI, bitmap(s) and the fields they announce, by hand."""
    fields: dict[str, str] = {"t": raw[:4].decode("ascii")}
    pos = 4

    def bitmap() -> int:
        nonlocal pos
        if spec == "1987-binary":
            value = int.from_bytes(raw[pos : pos + 8], "big")
            pos += 8
        else:
            value = int(raw[pos : pos + 16].decode("ascii"), 16)
            pos += 16
        return value

    bits = bitmap() << 64
    if bits >> 127 & 1:
        bits |= bitmap()
    table = FIELDS_1993 if spec == "1993" else FIELDS_1987
    for number in range(2, 129):
        if not bits >> (128 - number) & 1:
            continue
        layout = table[number]  # KeyError: a field this test does not expect
        if isinstance(layout, int):
            size = layout
        else:
            digits = len(layout[0])
            size = int(raw[pos : pos + digits])
            assert size <= layout[1], f"field {number}: length {size} > {layout[1]}"
            pos += digits
        fields[str(number)] = raw[pos : pos + size].decode("ascii")
        pos += size
    assert pos == len(raw), f"{len(raw) - pos} bytes after the last field"
    return fields


def pyiso_decode(raw: bytes, encoder: Iso8583Encoder) -> dict[str, str]:
    decoded, _ = iso8583.decode(raw, encoder.spec.fields)
    return {k: v for k, v in decoded.items() if k not in ("p", "1", "h")}


def context(stan: int = 1) -> MessageContext:
    return MessageContext(stan=stan, now=NOW, sink="test")


def reversal() -> Transaction:
    return txn(
        "SLM9Z8Y7X6",
        entry=Entry.REVERSAL,
        direction=Direction.DEBIT,
        related_receipt="SLK4H7R2PQ",
        reference=None,
        occurred_at=datetime(2024, 5, 7, 8, 0, 1, tzinfo=UTC),
    )


# --- golden files --------------------------------------------------------------------


@pytest.mark.parametrize("spec", SPECS)
def test_golden_messages(spec: str) -> None:
    encoder = Iso8583Encoder(spec=spec, acquirer_id="412345")
    payment = encoder.encode(txn(), context(1))
    original = encoder.original_of(txn(), context(1))
    undo = encoder.encode(reversal(), context(2), original)
    text = payment.hex().upper() + "\n" + undo.hex().upper() + "\n"
    path = GOLDEN / f"iso8583-{spec}.hex"
    if UPDATE or not path.exists():
        path.write_text(text)
    assert text == path.read_text()


def test_default_field_map_1987() -> None:
    encoder = Iso8583Encoder(acquirer_id="412345")
    fields = independent_decode(encoder.encode(txn(), context(42)), "1987-ascii")
    assert fields == {
        "t": "0220",  # advice: the payment already happened
        "3": "000000",
        "4": "000000150000",  # KES 1500.00 in cents
        "7": "0506180600",  # transmission, UTC
        "11": "000042",
        "12": "210559",  # 18:05:59 UTC is 21:05:59 EAT
        "13": "0506",
        "32": "412345",
        "37": "SLK4H7R2PQ  ",
        "39": "00",
        "41": "600100  ",
        "42": "600100         ",
        "49": "404",
        "102": "INV-1001",
    }


def test_request_mti_and_1993_layout() -> None:
    assert independent_decode(Iso8583Encoder(mti="request").encode(txn(), context()), "1987-ascii")[
        "t"
    ] == ("0200")
    fields = independent_decode(Iso8583Encoder(spec="1993").encode(txn(), context()), "1993")
    assert fields["t"] == "1220"
    assert fields["12"] == "240506210559"
    assert fields["24"] == "200"
    assert fields["39"] == "000"
    assert "13" not in fields


@pytest.mark.parametrize("spec", SPECS)
def test_reversal_quotes_the_original(spec: str) -> None:
    encoder = Iso8583Encoder(spec=spec, acquirer_id="412345")
    first = MessageContext(stan=17, now=datetime(2024, 5, 6, 18, 6, 5, tzinfo=UTC))
    original = encoder.original_of(txn(), first)
    fields = independent_decode(encoder.encode(reversal(), context(18), original), spec)
    assert fields["t"] == ("1420" if spec == "1993" else "0420")
    assert fields["37"].rstrip() == "SLK4H7R2PQ"  # the original's retrieval reference
    assert fields["11"] == "000018"
    if spec == "1993":
        assert fields["24"] == "400"
        assert fields["56"] == "1220" + "000017" + "240506210559" + "06412345"
    else:
        assert fields["90"] == "0220" + "000017" + "0506180605" + "00000412345" + "0" * 11


def test_reversal_without_known_original_has_zero_original_data() -> None:
    fields = independent_decode(Iso8583Encoder().encode(reversal(), context()), "1987-ascii")
    assert fields["90"] == "0220" + "0" * 38


def test_ugx_has_no_minor_units() -> None:
    encoder = Iso8583Encoder()
    raw = encoder.encode(txn(amount=Decimal("5000"), currency="UGX"), context())
    fields = pyiso_decode(raw, encoder)
    assert fields["4"] == "000000005000"
    assert fields["49"] == "800"


def test_field_overrides_user_spec_and_placeholders(tmp_path: Path) -> None:
    spec = tmp_path / "host.yaml"
    spec.write_text(
        "name: my-host\nbase: 1987-ascii\nfields:\n"
        '  "48": {data_enc: ascii, len_enc: ascii, len_type: 3, max_len: 99, kind: ans,'
        ' desc: "Additional Data"}\n'
        '  "41": {max_len: 10}\n'
    )
    encoder = Iso8583Encoder(
        spec=str(spec),
        fields={"48": "MPESA:{receipt}", "42": None, "3": "210000"},
        terminal_id="TILL000001",
    )
    decoded = pyiso_decode(encoder.encode(txn(), context()), encoder)
    assert decoded["48"] == "MPESA:SLK4H7R2PQ"
    assert decoded["41"] == "TILL000001"
    assert decoded["3"] == "210000"
    assert "42" not in decoded


def test_registry_builds_the_encoder_and_builtin_specs_load() -> None:
    assert isinstance(get_encoder("iso8583", {"spec": "1993"}), Iso8583Encoder)
    assert builtin_spec_names() == sorted(SPECS)
    for name in SPECS:
        assert load_spec(name).fields["4"]["max_len"] == 12


# --- properties ----------------------------------------------------------------------

CURRENCIES = ["KES", "UGX", "TZS", "RWF"]
ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
PRINTABLE = "".join(chr(c) for c in range(0x20, 0x7F))


@st.composite
def transactions(draw: st.DrawFn) -> Transaction:
    currency = draw(st.sampled_from(CURRENCIES))
    units = 2 if currency in ("KES", "TZS") else 0
    minor = draw(st.integers(min_value=0, max_value=999_999_999_999))
    reference = draw(st.text(PRINTABLE, min_size=1, max_size=28).filter(lambda s: s == s.strip()))
    return Transaction(
        provider="mpesa",
        account=draw(st.text("0123456789", min_size=5, max_size=7)),
        receipt=draw(st.text(ALNUM, min_size=10, max_size=12)),
        entry=Entry.PAYMENT,
        direction=Direction.CREDIT,
        amount=Decimal(minor).scaleb(-units),
        currency=currency,
        occurred_at=draw(
            st.datetimes(
                min_value=datetime(2000, 1, 1),
                max_value=datetime(2098, 12, 31),
                timezones=st.just(UTC),
            )
        ).replace(microsecond=0),
        counterparty=Counterparty(msisdn="254712345678"),
        reference=reference,
    )


@settings(max_examples=200, deadline=None)
@given(t=transactions(), spec=st.sampled_from(SPECS), stan=st.integers(1, 999_999))
def test_round_trip_amounts_dates_references(t: Transaction, spec: str, stan: int) -> None:
    encoder = Iso8583Encoder(spec=spec)
    raw = encoder.encode(t, context(stan))
    ours = independent_decode(raw, spec)
    assert pyiso_decode(raw, encoder) == ours
    units = 2 if t.currency in ("KES", "TZS") else 0
    assert Decimal(int(ours["4"])).scaleb(-units) == t.amount
    assert ours["49"] == numeric_code(t.currency)
    assert ours["11"] == f"{stan:06}"
    assert ours["37"].rstrip() == t.receipt
    assert ours["102"] == t.reference
    assert ours["41"].rstrip() == t.account
    assert t.occurred_at is not None
    local = t.occurred_at.astimezone(NAIROBI)
    if spec == "1993":
        assert ours["12"] == local.strftime("%y%m%d%H%M%S")
    else:
        assert ours["12"] == local.strftime("%H%M%S")
        assert ours["13"] == local.strftime("%m%d")


# --- refusals ------------------------------------------------------------------------


def refused(encoder: Iso8583Encoder, t: Transaction, stan: int | None = 1) -> EncodeError:
    with pytest.raises(EncodeError) as caught:
        encoder.encode(t, MessageContext(stan=stan, now=NOW))
    return caught.value


def test_missing_stan_is_refused() -> None:
    error = refused(Iso8583Encoder(), txn(), stan=None)
    assert error.field == "field 11"
    assert "STAN" in str(error)


def test_over_long_reference_is_refused_not_truncated() -> None:
    error = refused(Iso8583Encoder(), txn(reference="R" * 29))
    assert error.field == "field 102"
    assert "29 characters" in str(error)
    assert "at most 28" in str(error)


def test_over_long_terminal_and_receipt_are_refused() -> None:
    assert refused(Iso8583Encoder(), txn(account="123456789")).field == "field 41"
    assert refused(Iso8583Encoder(), txn("MP210603.1234.L06941")).field == "field 37"


def test_letters_in_numeric_fields_are_refused() -> None:
    with pytest.raises(EncodeError) as caught:
        Iso8583Encoder(acquirer_id="41AB45")
    assert caught.value.field == "field 32"
    assert "digits only" in str(caught.value)
    encoder = Iso8583Encoder(fields={"32": "{reference}"})
    error = refused(encoder, txn(reference="INV-1"))
    assert error.field == "field 32"
    assert error.receipt == "SLK4H7R2PQ"


def test_other_refusals() -> None:
    assert refused(Iso8583Encoder(), txn(entry=Entry.CHARGE)).field == "field 3"
    assert refused(Iso8583Encoder(), txn(status="failed")).field == "status"
    no_original = txn(entry=Entry.REVERSAL, related_receipt=None)
    assert refused(Iso8583Encoder(), no_original).field == "related_receipt"
    assert refused(Iso8583Encoder(), txn(account=None)).field == "field 41"
    assert refused(Iso8583Encoder(), txn(), stan=1_000_000).field == "field 11"


def test_bad_options_name_the_option() -> None:
    with pytest.raises(EncoderOptionsError, match=r"options\.colour"):
        Iso8583Encoder(colour="red")
    with pytest.raises(EncoderOptionsError, match="mti"):
        Iso8583Encoder(spec="1993", mti="0220")
    with pytest.raises(EncoderOptionsError, match="processing_codes"):
        Iso8583Encoder(processing_codes={"charge": "17"})
    with pytest.raises(EncodeError, match="unknown ISO 8583 spec"):
        Iso8583Encoder(spec="1988")


# --- STANs and decoding --------------------------------------------------------------


def test_in_memory_stan_allocator_wraps_to_one() -> None:
    allocator = InMemoryStanAllocator(999_998)
    assert [allocator.allocate() for _ in range(3)] == [999_998, 999_999, 1]
    with pytest.raises(ValueError, match="STAN"):
        InMemoryStanAllocator(0)


def test_masking() -> None:
    assert mask_pan("4111111111111111") == "411111******1111"
    assert mask_account("0123456789012") == "01*******9012"
    assert mask_account("INV-1") == "*****"


def test_decode_message_masks_account_data() -> None:
    encoder = Iso8583Encoder(spec="1987-binary")
    fields = {f.key: f for f in decode_message(encoder.encode(txn(), context()), encoder.spec)}
    assert fields["102"].value == "IN**1001"
    assert fields["4"].value == "000000150000"
    assert fields["t"].description == "Message Type"
