"""The test ISO 8583 host: a real TCP server answering as a switch would."""

from __future__ import annotations

import json
import signal
import socket
import struct
from pathlib import Path

import iso8583
import pytest

from pesabridge.devtools.iso8583_host import (
    HostRule,
    Iso8583HostThread,
    parse_rule,
    response_mti,
)
from pesabridge.encoders.base import MessageContext
from pesabridge.encoders.iso8583 import DEFAULT_SPEC, Iso8583Encoder, load_spec
from pesabridge.sinks.iso8583.framing import Framing

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
    [
        ("0200", "0210"),
        ("0220", "0230"),
        ("0221", "0230"),
        ("0421", "0430"),
        ("1220", "1230"),
        ("1804", "1814"),
    ],
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


def request(receipt: str, stan: int) -> dict[str, str]:
    return Iso8583Encoder(mti="request").message(payment(receipt), MessageContext(stan=stan))


def reversal_of(fields: dict[str, str], stan: int, original_stan: int | None) -> bytes:
    reversal = dict(fields, t="0420", **{"11": f"{stan:06}"})
    quoted = "0200" + (f"{original_stan:06}" if original_stan else "000000")
    reversal["90"] = quoted + "1128064617" + "0" * 22
    raw, _ = iso8583.encode(reversal, SPEC.fields)
    return bytes(raw)


def encoded(fields: dict[str, str]) -> bytes:
    raw, _ = iso8583.encode(dict(fields), SPEC.fields)
    return bytes(raw)


def test_the_ledger_nets_postings_and_reversals_per_rrn() -> None:
    with Iso8583HostThread() as host:
        first = request("SGNET00001", 1)
        assert (exchange(host.port, encoded(first)) or {})["39"] == "00"
        # the same STAN and RRN again is a duplicate transmission, not a second posting
        assert (exchange(host.port, encoded(first)) or {})["39"] == "94"
        assert host.state.net() == {"SGNET00001": 1}
        # a new STAN for the same RRN is a second posting: what the sink must never do
        assert (exchange(host.port, encoded(request("SGNET00001", 2))) or {})["39"] == "00"
        assert host.state.double_postings == {"SGNET00001": 2}
        answer = exchange(host.port, reversal_of(first, 3, 1))
        assert answer is not None
        assert (answer["t"], answer["39"]) == ("0430", "00")
        assert host.state.net() == {"SGNET00001": 1}
        # a reversal of something never booked: 25, original not found
        unknown = exchange(host.port, reversal_of(request("SGNET00002", 4), 5, 4))
        assert (unknown or {})["39"] == "25"
        # ... and the late original is then acknowledged but never booked
        late = exchange(host.port, encoded(request("SGNET00002", 4)))
        assert (late or {})["39"] == "00"
        assert host.state.net() == {"SGNET00001": 1}


def test_a_reversal_without_the_original_stan_finds_the_posting_by_rrn() -> None:
    with Iso8583HostThread() as host:
        fields = request("SGNET00003", 7)
        exchange(host.port, encoded(fields))
        assert (exchange(host.port, reversal_of(fields, 8, None)) or {})["39"] == "00"
        assert host.state.net() == {"SGNET00003": 0}


def test_rrn_duplicates_answers_94_to_a_booked_rrn() -> None:
    with Iso8583HostThread(rrn_duplicates=True) as host:
        exchange(host.port, encoded(request("SGNET00004", 1)))
        again = exchange(host.port, encoded(request("SGNET00004", 2)))
        assert (again or {})["39"] == "94"
        assert host.state.net() == {"SGNET00004": 1}


def test_rules_for_some_message_types_only() -> None:
    with Iso8583HostThread() as host:
        host.add_rule(HostRule(mode="decline", code="91", mtis=("0200",), times=5))
        assert (exchange(host.port, advice("SGNET00005", 1)) or {})["39"] == "00"
        assert (exchange(host.port, encoded(request("SGNET00006", 2))) or {})["39"] == "91"


def test_parse_rule() -> None:
    rule = parse_rule(["decline", "51", "times=3", "mtis=0200,0220"])
    assert (rule.mode, rule.code, rule.times, rule.mtis) == ("decline", "51", 3, ("0200", "0220"))
    assert parse_rule(["slow", "1.5", "post=no"]).delay == 1.5
    assert not parse_rule(["drop", "post=no"]).post
    with pytest.raises(ValueError, match="starts with"):
        parse_rule(["explode"])


def test_the_command_takes_framing_and_modes_on_its_control_port(tmp_path: Path) -> None:
    port, control = free_port(), free_port()
    log = tmp_path / "host.log"
    process = start_pesabridge(
        "iso8583-host",
        "--port",
        str(port),
        "--length",
        "ascii4",
        "--tpdu",
        "6000010002",
        "--control-port",
        str(control),
        log=log,
    )
    framing = Framing("ascii4", tpdu=bytes.fromhex("6000010002"))

    def send(message: bytes) -> dict[str, str]:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(framing.frame(message))
            size = int(conn.recv(4))
            body = b""
            while len(body) < size:
                body += conn.recv(size - len(body))
        assert body[:5] == bytes.fromhex("6000020001")  # the addresses swapped
        return iso8583.decode(body[5:], SPEC.fields)[0]

    def command(line: str) -> str:
        with socket.create_connection(("127.0.0.1", control), timeout=2) as conn:
            conn.sendall(line.encode() + b"\n")
            return conn.makefile().readline().strip()

    try:
        wait_for(lambda: send(advice("SGCLI00001", 1)), 20, "the host to answer")
        assert command("mode decline 05 times=1") == "ok"
        assert send(advice("SGCLI00002", 2))["39"] == "05"
        assert send(advice("SGCLI00003", 3))["39"] == "00"
        assert command("explode").startswith("error")
        stats = json.loads(command("stats"))
        assert stats["posted"] == 2
        assert stats["double_postings"] == {}
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(10) == 0
    assert "RRNs posted more than once" in log.read_text()
