"""JSON encoder and the canonical JSON Schema.

The schema is checked with a small structural validator written here (no new
dependency): it implements exactly the keywords the schema uses (type, required,
properties, additionalProperties, enum, pattern, minLength, $ref into $defs) and fails
on any other keyword, so the schema cannot quietly rely on something this test ignores.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pesabridge.encoders import canonical_json
from pesabridge.encoders.base import EncodeError, MessageContext
from pesabridge.encoders.json import JsonEncoder, schema
from pesabridge.encoders.options import EncoderOptionsError
from pesabridge.encoders.registry import get_encoder
from pesabridge.formats.base import Observation
from pesabridge.formats.jsonl import read_line
from pesabridge.model import Counterparty, Transaction
from tests.helpers import txn

ANNOTATIONS = {"$schema", "$id", "title", "description", "$defs"}
TYPES: dict[str, Any] = {
    "object": dict,
    "string": str,
    "null": type(None),
    "array": list,
    "boolean": bool,
}


def problems(value: Any, node: dict[str, Any], root: dict[str, Any], path: str = "$") -> list[str]:
    """Where ``value`` breaks the schema ``node`` (empty when it conforms)."""
    unknown = (
        set(node)
        - ANNOTATIONS
        - {
            "type",
            "required",
            "properties",
            "additionalProperties",
            "enum",
            "pattern",
            "minLength",
            "$ref",
        }
    )
    assert not unknown, f"{path}: the schema uses keywords this validator lacks: {unknown}"
    if "$ref" in node:
        ref = node["$ref"]
        assert ref.startswith("#/$defs/")
        target = root["$defs"][ref.removeprefix("#/$defs/")]
        found = problems(value, target, root, path)
        rest = {k: v for k, v in node.items() if k != "$ref"}
        return found + problems(value, rest, root, path)
    found: list[str] = []
    if "type" in node:
        allowed = node["type"] if isinstance(node["type"], list) else [node["type"]]
        if not any(isinstance(value, TYPES[name]) for name in allowed):
            return [f"{path}: {type(value).__name__} is not {allowed}"]
    if "enum" in node and value not in node["enum"]:
        found.append(f"{path}: {value!r} not in {node['enum']}")
    if isinstance(value, str):
        if "pattern" in node and not re.search(node["pattern"], value):
            found.append(f"{path}: {value!r} does not match {node['pattern']}")
        if len(value) < node.get("minLength", 0):
            found.append(f"{path}: shorter than {node['minLength']}")
    if isinstance(value, dict):
        for key in node.get("required", []):
            if key not in value:
                found.append(f"{path}: {key} is missing")
        properties = node.get("properties", {})
        for key, item in value.items():
            if key in properties:
                found += problems(item, properties[key], root, f"{path}.{key}")
            elif node.get("additionalProperties") is False:
                found.append(f"{path}: {key} is not allowed")
    return found


def expected_lines(samples_dir: Path) -> list[tuple[str, str]]:
    files = sorted((samples_dir / "expected").rglob("*.jsonl"))
    assert len(files) >= 10
    return [
        (f"{path.name}:{number}", line)
        for path in files
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if line.strip()
    ]


def test_every_parse_sample_output_validates(samples_dir: Path) -> None:
    root = schema()
    for where, line in expected_lines(samples_dir):
        assert problems(json.loads(line), root, root) == [], where


def test_json_encoder_output_validates_and_reads_back(samples_dir: Path) -> None:
    root = schema()
    encoder = JsonEncoder()
    for where, line in expected_lines(samples_dir):
        observed = read_line(line.encode(), "sample", 1)
        assert isinstance(observed, Observation), where
        body = encoder.encode(observed.transaction, MessageContext())
        assert problems(json.loads(body), root, root) == [], where
        again = read_line(body, "again", 1)
        assert isinstance(again, Observation)
        assert again.transaction == observed.transaction
        keyed = encoder.encode(observed.transaction, MessageContext(idempotency_key="k-1"))
        assert problems(json.loads(keyed), root, root) == [], where
        assert json.loads(keyed)["idempotency_key"] == "k-1"


def test_with_a_key_the_encoder_is_canonical_json() -> None:
    t = txn()
    assert JsonEncoder().encode(t, MessageContext(idempotency_key="abc")) == canonical_json(
        t, idempotency_key="abc"
    )
    body = JsonEncoder().encode(t, MessageContext())
    assert body == (
        b'{"provider":"mpesa","account":"600100","receipt":"SLK4H7R2PQ","entry":"payment",'
        b'"direction":"credit","amount":"1500.00","currency":"KES",'
        b'"occurred_at":"2024-05-06T18:05:59Z","counterparty":{"msisdn":"254712345678",'
        b'"msisdn_kind":"plain","name":"JANE WANJIKU"},"reference":"INV-1001",'
        b'"balance_after":null,"status":"completed","related_receipt":null}'
    )


# Any text a provider may send: every code point but the surrogates (no UTF-8 form).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=40)


@given(
    reference=TEXT,
    name=TEXT,
    msisdn=st.sampled_from(["254712345678", "2547******678", "a1b2" * 16]),
    key=TEXT,
    micro=st.integers(0, 999_999),
)
def test_bodies_are_the_standard_librarys_compact_json(
    reference: str, name: str, msisdn: str, key: str, micro: int
) -> None:
    """The bodies are made by orjson for speed; the bytes must be exactly what the standard
    library's compact, non-ASCII-escaping encoder writes (control characters, quotes,
    backslashes, U+2028, astral characters), so a back office verifying a signature over
    the body, or comparing bodies across versions, sees no change."""
    t = txn(
        reference=reference.strip() or None,
        counterparty=Counterparty(msisdn=msisdn, name=name),
        occurred_at=datetime(2024, 5, 6, 18, 5, 59, micro, tzinfo=UTC),
    )
    expected = {"idempotency_key": key, **t.to_dict()}
    standard = json.dumps(expected, separators=(",", ":"), ensure_ascii=False).encode()
    assert canonical_json(t, idempotency_key=key) == standard
    assert json.loads(standard) == expected


def test_text_without_a_utf8_form_is_an_encode_error_naming_the_receipt() -> None:
    t = txn(reference="INV-\udc80")
    with pytest.raises(EncodeError, match="SLK4H7R2PQ"):
        canonical_json(t, idempotency_key="k")


def test_schema_file_in_package_and_docs_agree() -> None:
    docs = Path(__file__).resolve().parents[2] / "docs" / "encoders" / "json.md"
    text = docs.read_text()
    block = text.split("```json\n", 1)[1].split("\n```", 1)[0]
    assert json.loads(block) == schema()


@pytest.mark.parametrize(
    ("change", "where"),
    [
        ({"amount": 1500.0}, "$.amount"),
        ({"amount": "-1.00"}, "$.amount"),
        ({"entry": "gift"}, "$.entry"),
        ({"currency": "kes"}, "$.currency"),
        ({"occurred_at": "2024-05-06 18:05:59"}, "$.occurred_at"),
        ({"colour": "red"}, "colour"),
        ({"counterparty": {"msisdn": "1", "msisdn_kind": "odd", "name": None}}, "msisdn_kind"),
    ],
)
def test_validator_is_not_vacuous(change: dict[str, Any], where: str) -> None:
    root = schema()
    document = {**txn().to_dict(), **change}
    found = problems(document, root, root)
    assert found
    assert where in found[0]


def test_registry_and_no_options() -> None:
    assert isinstance(get_encoder("json"), JsonEncoder)
    with pytest.raises(EncoderOptionsError):
        JsonEncoder(pretty="yes")
    t = Transaction.from_dict({**txn().to_dict(), "amount": Decimal("5000"), "currency": "UGX"})
    assert json.loads(JsonEncoder().encode(t, MessageContext()))["amount"] == "5000"
