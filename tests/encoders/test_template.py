"""Template encoder: sandboxed Jinja2, strict names, escaping by file type, filters."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from pesabridge.encoders.base import EncodeError, MessageContext, Statement
from pesabridge.encoders.options import EncoderOptionsError
from pesabridge.encoders.registry import get_encoder
from pesabridge.encoders.template import TemplateEncoder
from tests.helpers import txn

GOLDEN = Path(__file__).parent / "golden"


def test_inline_template_with_filters() -> None:
    encoder = TemplateEncoder(
        template=(
            "{{ txn.receipt }}|{{ txn.amount | minor_units(txn.currency) }}|"
            "{{ txn.occurred_at | eat('%Y-%m-%d %H:%M:%S') }}|"
            "{{ txn.occurred_at | local('Africa/Kampala', '%H:%M') }}|"
            "{{ txn.counterparty.msisdn | mask_msisdn }}|{{ txn.amount | money(',') }}|"
            "{{ t.reference }}|{{ context.stan }}\n"
        )
    )
    assert encoder.encode(txn(), MessageContext(stan=7)) == (
        b"SLK4H7R2PQ|150000|2024-05-06 21:05:59|21:05|2547****5678|1500,00|INV-1001|7\n"
    )


def test_ugx_minor_units() -> None:
    encoder = TemplateEncoder(template="{{ txn.amount | minor_units(txn.currency) }}")
    assert encoder.encode(txn(amount=Decimal("5000"), currency="UGX"), MessageContext()) == b"5000"


def test_misspelt_name_is_an_error_not_blank() -> None:
    encoder = TemplateEncoder(template="{{ txn.refrence }}")
    with pytest.raises(EncodeError, match="refrence") as caught:
        encoder.encode(txn(), MessageContext())
    assert caught.value.receipt == "SLK4H7R2PQ"


def test_sandbox_refuses_internals() -> None:
    encoder = TemplateEncoder(template="{{ txn.__class__.__mro__ }}")
    with pytest.raises(EncodeError, match="unsafe"):
        encoder.encode(txn(), MessageContext())


def test_autoescape_on_for_xml_off_for_text(tmp_path: Path) -> None:
    xml = tmp_path / "payment.xml"
    xml.write_text("<Ref>{{ txn.reference }}</Ref>\n")
    text = tmp_path / "payment.txt"
    text.write_text("{{ txn.reference }}\n")
    t = txn(reference="A&B <C>")
    assert TemplateEncoder(template_file=xml).encode(t, MessageContext()) == (
        b"<Ref>A&amp;B &lt;C&gt;</Ref>\n"
    )
    assert TemplateEncoder(template_file=text).encode(t, MessageContext()) == b"A&B <C>\n"
    assert TemplateEncoder(template="{{ txn.reference }}").encode(t, MessageContext()) == (
        b"A&B <C>"
    )
    forced = TemplateEncoder(template="{{ txn.reference }}", autoescape=True)
    assert forced.encode(t, MessageContext()) == b"A&amp;B &lt;C&gt;"


def test_statement_template_golden() -> None:
    statement = Statement(
        account="600100",
        currency="KES",
        period_start=date(2024, 5, 6),
        period_end=date(2024, 5, 6),
        opening_balance=Decimal("100.00"),
        entries=[txn("A1"), txn("A2", amount=Decimal("20.00"))],
        statement_id="600100-20240506",
    )
    encoder = TemplateEncoder(template_file=GOLDEN / "statement.txt.j2")
    body = encoder.encode_statement(statement)
    assert body == (GOLDEN / "statement.txt").read_bytes()


def test_bad_templates_and_options() -> None:
    with pytest.raises(EncoderOptionsError, match="line 1"):
        TemplateEncoder(template="{{ txn.receipt ")
    with pytest.raises(EncoderOptionsError, match="exactly one"):
        TemplateEncoder()
    with pytest.raises(EncoderOptionsError, match="cannot read"):
        TemplateEncoder(template_file="/nonexistent/t.txt")
    assert isinstance(get_encoder("template", {"template": "x"}), TemplateEncoder)
