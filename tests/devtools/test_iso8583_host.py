"""The test ISO 8583 host: a real TCP server answering as a switch would."""

from __future__ import annotations

import signal
import socket
import struct
from pathlib import Path

import iso8583
import pytest

from pesabridge.devtools.iso8583_host import HostRule, Iso8583HostThread, response_mti
from pesabridge.encoders.base import MessageContext
from pesabridge.encoders.iso8583 import DEFAULT_SPEC, Iso8583Encoder, load_spec

from ..helpers import free_port, payment, start_pesabridge, wait_for

SPEC = load_spec(DEFAULT_SPEC)


def exchange(port: int, message: bytes, timeout: float = 2.0) -> dict[str, str] | None:
    """Send one framed message; the decoded answer, or None when the host hung up."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as conn:
        conn.sendall(struct.pack(">H", len(message)) + message)
        header = conn.recv(2)
        if not header:
            return None
        (length,) = struct.unpack(">H", header)
        body = b""
        while len(body) < length:
            chunk = conn.recv(length - len(body))
            assert chunk, "connection closed mid-answer"
            body += chunk
    fields, _ = iso8583.decode(body, SPEC.fields)
    return fields


def advice(receipt: str, stan: int) -> bytes:
    return Iso8583Encoder().encode(payment(receipt), MessageContext(stan=stan))


def test_advice_is_approved_and_repeats_are_counted() -> None:
    with Iso8583HostThread() as host:
        first = exchange(host.port, advice("SGHOST0001", 7))
        again = exchange(host.port, advice("SGHOST0001", 7))
        other = exchange(host.port, advice("SGHOST0002", 8))
    assert first is not None
    assert again is not None
    assert other is not None
    assert again["39"] == "00"  # a repeated advice is acknowledged, and counted
    assert (first["t"], first["39"], first["11"]) == ("0230", "00", "000007")
    assert first["37"].strip() == "SGHOST0001"
    assert host.state.duplicates == 1
    assert len(host.state.postings) == 2


def test_echo_decline_silence_and_drop() -> None:
    echo = {"t": "0800", "7": "1128064617", "11": "000001", "70": "301"}
    raw, _ = iso8583.encode(echo, SPEC.fields)
    with Iso8583HostThread() as host:
        answer = exchange(host.port, bytes(raw))
        assert answer is not None
        assert (answer["t"], answer["39"]) == ("0810", "00")
        host.add_rule(HostRule(mode="decline", code="05"))
        declined = exchange(host.port, advice("SGHOST0003", 9))
        assert declined is not None
        assert declined["39"] == "05"
        host.add_rule(HostRule(mode="silent"))
        with pytest.raises(TimeoutError):
            exchange(host.port, advice("SGHOST0004", 10), timeout=0.5)
        host.add_rule(HostRule(mode="drop"))
        assert exchange(host.port, advice("SGHOST0005", 11)) is None


@pytest.mark.parametrize(
    ("mti", "answer"),
    [("0200", "0210"), ("0220", "0230"), ("0221", "0230"), ("0421", "0430"), ("1220", "1230")],
)
def test_response_mti(mti: str, answer: str) -> None:
    assert response_mti(mti) == answer


def test_the_command_serves_until_interrupted(tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "host.log"
    process = start_pesabridge("iso8583-host", "--port", str(port), "--mode", "decline", log=log)
    try:
        wait_for(lambda: exchange(port, advice("SGHOST0009", 1)), 20, "the host to answer")
        answer = exchange(port, advice("SGHOST0010", 2))
        assert answer is not None
        assert answer["39"] == "05"
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
    assert "distinct messages" in log.read_text()
