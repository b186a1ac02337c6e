"""The HTTP sink against the real test back office: unknown outcomes, 409, OAuth2, mutual
TLS, Standard Webhooks signatures (verified here independently), rate limits, encoders."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import ipaddress
import ssl
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy import select

from pesabridge.config import parse_config
from pesabridge.delivery import DeliveryWorker, RetryPolicy
from pesabridge.devtools.backoffice import BackOffice, Rule
from pesabridge.sinks.http import RESPONSE_EXCERPT, HttpSink, TokenBucket, excerpt, extract
from pesabridge.store import Sighting, Store
from pesabridge.store.schema import attempts

from ..helpers import observed, payment

FAST = RetryPolicy(max_attempts=6, base=0.02, cap=0.05)


def sink(url: str, **options: Any) -> HttpSink:
    section = {"name": "erp", "type": "http", "url": url, **options}
    config = parse_config({"sinks": [section]}, environ={"ERP_SECRET": "s3cret"})
    return HttpSink(config.sinks[0])  # type: ignore[arg-type]


def record(store: Store, *receipts: str) -> None:
    store.record(
        [observed(payment(r)) for r in receipts],
        Sighting("callback", "callback"),
        lambda _t: ["erp"],
    )


async def drain(store: Store, http: HttpSink, seconds: float = 20) -> None:
    worker = DeliveryWorker(store, {"erp": http}, {"erp": FAST})
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            await worker.run_once()
            per_state = store.status()["deliveries"].get("erp", {})
            if not per_state.get("pending") and not per_state.get("in_flight"):
                return
            await asyncio.sleep(0.03)
        pytest.fail(f"still open: {store.status()['deliveries']}")
    finally:
        await worker.close()


def attempt_rows(store: Store) -> list[Any]:
    with store.read() as conn:
        return list(conn.execute(select(attempts).order_by(attempts.c.id)))


@pytest.mark.parametrize("when", ["before", "after"])
async def test_a_dropped_connection_is_an_unknown_outcome_retried_with_the_same_key(
    store: Store, backoffice: BackOffice, when: str
) -> None:
    record(store, "SDROP00001")
    backoffice.add_rule(Rule(drop=when, times=1))  # type: ignore[arg-type]
    await drain(store, sink(backoffice.url, response={"document_id": "/document"}))
    assert len(backoffice.state.postings) == 1
    assert backoffice.state.replays == (1 if when == "after" else 0)
    first, second = attempt_rows(store)
    assert (first.outcome, first.unknown_outcome) == ("retry", True)
    assert "outcome unknown" in first.error
    assert (second.outcome, second.unknown_outcome) == ("delivered", False)
    keys = {headers["Idempotency-Key"] for headers, _ in backoffice.state.seen}
    assert len(keys) == 1
    (view,) = store.deliveries()
    assert view.document_id == "DOC-000001"


async def test_a_read_timeout_is_flagged_and_a_connect_failure_is_not(
    store: Store, backoffice: BackOffice
) -> None:
    record(store, "STIMEOUT01")
    backoffice.add_rule(Rule(delay=1.0, times=1))  # posts after the client gave up
    await drain(store, sink(backoffice.url, timeout={"connect": 1, "read": 0.3}))
    first, second = attempt_rows(store)
    assert first.unknown_outcome
    assert "read timed out" in first.error
    assert second.outcome == "delivered"
    assert len(backoffice.state.postings) == 1

    record(store, "SREFUSED01")
    policy_sink = sink("http://127.0.0.1:9/payments")
    worker = DeliveryWorker(store, {"erp": policy_sink}, {"erp": FAST})
    try:
        await worker.run_once()
    finally:
        await worker.close()
    last = attempt_rows(store)[-1]
    assert last.outcome == "retry"
    assert not last.unknown_outcome
    assert "never reached" in last.error


async def test_409_for_a_repeated_key_counts_as_delivered(
    store: Store, backoffice: BackOffice
) -> None:
    backoffice.conflict_on_replay = True
    record(store, "SCONFLICT1")
    backoffice.add_rule(Rule(drop="after", times=1))
    await drain(store, sink(backoffice.url))
    last = attempt_rows(store)[-1]
    assert (last.outcome, last.status_code) == ("delivered", 409)
    assert "already has this idempotency key" in last.error
    assert len(backoffice.state.postings) == 1


async def test_oauth2_token_is_cached_and_refreshed_once_on_401(
    store: Store, backoffice: BackOffice
) -> None:
    backoffice.require_token = True
    backoffice.oauth_clients = {"pesabridge": "s3cret"}
    auth = {
        "type": "oauth2",
        "token_url": f"{backoffice.origin}/oauth/token",
        "client_id": "pesabridge",
        "client_secret": "${ERP_SECRET}",
    }
    http = sink(backoffice.url, auth=auth)
    record(store, *(f"SOAUTH{i:04d}" for i in range(5)))
    worker = DeliveryWorker(store, {"erp": http}, {"erp": FAST})
    try:
        await worker.run_once()
        assert backoffice.state.tokens_issued == 1
        backoffice.revoke_tokens()
        record(store, "SOAUTH0099")
        await worker.run_once()
    finally:
        await worker.close()
    assert backoffice.state.tokens_issued == 2
    assert backoffice.state.unauthorized == 1
    assert len(backoffice.state.postings) == 6
    assert {v.state for v in store.deliveries()} == {"delivered"}
    assert "s3cret" not in repr(http.config)


async def test_refresh_before_expiry_and_form_client_auth(backoffice: BackOffice) -> None:
    backoffice.require_token = True
    backoffice.oauth_clients = {"pb": "s3cret"}
    backoffice.token_lifetime = 1  # shorter than the margin: used for half its life
    auth = {
        "type": "oauth2",
        "token_url": f"{backoffice.origin}/oauth/token",
        "client_id": "pb",
        "client_secret": "s3cret",
        "client_auth": "body",
    }
    http = sink(backoffice.url, auth=auth)
    try:
        session = http._client()
        assert http._token is not None
        first = await http._token.get(session)
        assert await http._token.get(session) == first
        await asyncio.sleep(0.6)
        second = await http._token.get(session)
    finally:
        await http.close()
    assert first != second
    assert backoffice.state.tokens_issued == 2


def verify_standard_webhook(secret: str, headers: dict[str, str], body: bytes) -> bool:
    """An independent reading of the Standard Webhooks spec."""
    key = base64.b64decode(secret.split("_", 1)[1])
    content = b".".join(
        [headers["webhook-id"].encode(), headers["webhook-timestamp"].encode(), body]
    )
    expected = base64.b64encode(hmac.digest(key, content, "sha256")).decode()
    offered = [s.split(",", 1) for s in headers["webhook-signature"].split(" ")]
    return any(v == "v1" and hmac.compare_digest(sig, expected) for v, sig in offered)


async def test_requests_are_signed_per_standard_webhooks(
    store: Store, backoffice: BackOffice
) -> None:
    old = "whsec_" + base64.b64encode(b"old-key-0123456789abcdef").decode()
    new = "whsec_" + base64.b64encode(b"new-key-fedcba9876543210").decode()
    stranger = "whsec_" + base64.b64encode(b"someone else").decode()
    record(store, "SSIGNED001")
    await drain(store, sink(backoffice.url, signing={"secrets": [old, new]}))
    ((headers, body),) = backoffice.state.seen
    assert verify_standard_webhook(old, headers, body)
    assert verify_standard_webhook(new, headers, body)
    assert not verify_standard_webhook(stranger, headers, body)
    assert headers["webhook-id"] == headers["Idempotency-Key"]
    assert abs(int(headers["webhook-timestamp"]) - time.time()) < 60
    assert not verify_standard_webhook(old, headers, body + b" ")


def test_a_signing_secret_must_be_base64() -> None:
    with pytest.raises(Exception, match="whsec_"):
        sink("http://127.0.0.1/x", signing={"secrets": ["whsec_not base64!"]})


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[str, ec.EllipticCurvePrivateKey] | None,
    *,
    ca: bool = False,
    ip: str | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    issuer_name, issuer_key = issuer or (subject, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ip:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(ip))]),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey) -> None:
    path.with_suffix(".crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    path.with_suffix(".key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


async def test_mutual_tls(store: Store, tmp_path: Path) -> None:
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = _cert("pb test CA", ca_key, None, ca=True)
    server_key, client_key = (
        ec.generate_private_key(ec.SECP256R1()),
        ec.generate_private_key(ec.SECP256R1()),
    )
    _write(tmp_path / "ca", ca, ca_key)
    _write(
        tmp_path / "server",
        _cert("127.0.0.1", server_key, ("pb test CA", ca_key), ip="127.0.0.1"),
        server_key,
    )
    _write(tmp_path / "client", _cert("pesabridge", client_key, ("pb test CA", ca_key)), client_key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=tmp_path / "ca.crt")
    context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    context.verify_mode = ssl.CERT_REQUIRED
    server = BackOffice()
    await server.start(ssl_context=context)
    try:
        assert server.url.startswith("https://")
        tls = {
            "cert": str(tmp_path / "client.crt"),
            "key": str(tmp_path / "client.key"),
            "ca": str(tmp_path / "ca.crt"),
        }
        record(store, "SMTLS00001")
        await drain(store, sink(server.url, tls=tls))
        assert len(server.state.postings) == 1

        # Without a client certificate the server refuses the handshake.
        record(store, "SMTLS00002")
        bare = sink(server.url, tls={"ca": str(tmp_path / "ca.crt")})
        worker = DeliveryWorker(store, {"erp": bare}, {"erp": FAST})
        try:
            await worker.run_once()
        finally:
            await worker.close()
        assert len(server.state.postings) == 1
        assert attempt_rows(store)[-1].outcome == "retry"
    finally:
        await server.stop()


async def test_token_bucket_spaces_requests() -> None:
    bucket = TokenBucket(rate=20, burst=2)
    started = time.monotonic()
    for _ in range(6):
        await bucket.acquire()
    assert time.monotonic() - started >= 0.18  # 2 at once, then 4 at 20/s


async def test_rate_limited_sink_delivers_everything(store: Store, backoffice: BackOffice) -> None:
    record(store, *(f"SRATE{i:05d}" for i in range(6)))
    started = time.monotonic()
    await drain(store, sink(backoffice.url, rate_limit={"per_second": 25, "burst": 1}))
    assert time.monotonic() - started >= 0.18
    assert len(backoffice.state.postings) == 6


def test_any_message_encoder_gives_the_body_and_media_type() -> None:
    from pesabridge.store.outbox import Claimed

    http = sink("http://127.0.0.1/x", encoder="camt054")
    assert http.media_type == "application/xml"
    claimed = Claimed(1, 1, "erp", 1, payment("SCAMT00001"))
    body = http.encode(claimed)
    assert body.startswith(b"<?xml")
    assert b"SCAMT00001" in body
    summary = http.summary(body)
    assert summary.startswith("POST http://127.0.0.1/x application/xml ")
    assert hashlib.sha256(body).hexdigest()[:16] in summary


def test_response_excerpt_decodes_as_aiohttp_text_would() -> None:
    assert excerpt("café".encode(), "application/json") == "café"
    assert excerpt("café".encode(), None) == "café"
    assert excerpt("café".encode("latin-1"), "text/plain; Charset=ISO-8859-1") == "café"
    assert excerpt("café".encode("latin-1"), 'text/plain; charset="latin-1"') == "café"
    # Undecodable bytes are replaced; an unknown charset falls back to UTF-8.
    assert excerpt(b"caf\xe9", "text/plain") == "caf\ufffd"
    assert excerpt("café".encode(), "text/plain; charset=no-such-codec") == "café"
    assert excerpt(b"x" * (RESPONSE_EXCERPT + 50), "text/plain") == "x" * RESPONSE_EXCERPT


def test_prepared_request_is_what_deliver_would_build() -> None:
    from pesabridge.store.outbox import Claimed

    http = sink("http://127.0.0.1/x", headers={"X-Tenant": "t1"})
    claimed = Claimed(1, 1, "erp", 1, payment("SPREP00001"))
    (prepared,) = http.prepare([claimed])
    assert prepared is not None
    assert prepared.body == http.encode(claimed)
    assert prepared.summary == http.summary(prepared.body)
    assert prepared.headers["Idempotency-Key"] == claimed.idempotency_key
    assert prepared.headers["X-Tenant"] == "t1"
    # Each request has its own headers: signing or a token added to one stays there.
    (again,) = http.prepare([claimed])
    assert again is not None
    assert again.headers is not prepared.headers


def test_statement_encoders_are_refused() -> None:
    with pytest.raises(Exception, match="statements"):
        sink("http://127.0.0.1/x", encoder="mt940")


def test_response_paths() -> None:
    doc = {"data": {"id": 42, "items": [{"ref": "A"}]}, "a/b": "slash"}
    assert extract(doc, "/data/id") == "42"
    assert extract(doc, "data.items.0.ref") == "A"
    assert extract(doc, "/a~1b") == "slash"
    assert extract(doc, "data.missing") is None
    assert extract(doc, "/data") is None
