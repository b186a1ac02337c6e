"""The ISO 8583 sink's connections against the real host: framing variants and TPDU,
sign-on and echo, reconnecting with backoff, several requests in flight on one
connection with answers out of order."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pesabridge.devtools.iso8583_host import HostRule
from pesabridge.sinks.iso8583.framing import Framing, FramingError, parse_tpdu, swap_tpdu
from pesabridge.store import Store

from ..helpers import free_port
from .iso8583_support import deliver_all, iso_sink, net, record, running_host


@pytest.mark.parametrize("length", ["binary2", "ascii4", "binary4"])
@pytest.mark.parametrize("includes_length", [False, True])
@pytest.mark.parametrize("tpdu", [None, "6000120034"])
async def test_every_framing_delivers(
    sqlite_url: str, length: str, includes_length: bool, tpdu: str | None
) -> None:
    store = Store.open(sqlite_url)
    record(store, "SISOFRAM01", "SISOFRAM02")
    framing = Framing(length, includes_length, parse_tpdu(tpdu))  # type: ignore[arg-type]
    options: dict[str, Any] = {"length": length, "includes_length": includes_length}
    if tpdu:
        options["tpdu"] = tpdu
    async with running_host(framing=framing) as host:
        await deliver_all(store, iso_sink(host.port, store, framing=options))
    assert {v.state for v in store.deliveries()} == {"delivered"}
    assert net(host) == {"SISOFRAM01": 1, "SISOFRAM02": 1}
    assert set(host.state.tpdus) == {parse_tpdu(tpdu)}
    store.close()


def test_frames_on_the_wire() -> None:
    assert Framing().frame(b"0800") == b"\x00\x040800"
    assert Framing("ascii4").frame(b"0800") == b"00040800"
    assert Framing("ascii4", includes_length=True).frame(b"0800") == b"00080800"
    assert Framing("binary4", tpdu=b"\x60\x00\x01\x00\x02").frame(b"08") == (
        b"\x00\x00\x00\x07\x60\x00\x01\x00\x0208"
    )
    assert swap_tpdu(bytes.fromhex("6000120034")) == bytes.fromhex("6000340012")
    with pytest.raises(FramingError):
        Framing("ascii4").payload_size(b"12a4")
    with pytest.raises(ValueError, match="5"):
        parse_tpdu("600000")


async def test_a_framing_mismatch_is_a_retry_not_a_posting(store: Store) -> None:
    record(store, "SISOMISM01")
    async with running_host(framing=Framing("ascii4")) as host:
        sink = iso_sink(host.port, store, max_attempts=2, connect_timeout=0.5)
        await deliver_all(store, sink)  # the host hangs up on what it cannot read
    (view,) = store.deliveries()
    assert view.state == "dead"
    assert "no connection" in (view.last_error or "")
    assert net(host) == {}


async def test_sign_on_then_echo_when_the_line_is_quiet(store: Store) -> None:
    record(store, "SISOECHO01")
    async with running_host() as host:
        sink = iso_sink(host.port, store, echo_interval=0.2)
        await deliver_all(store, sink, close=False)
        await asyncio.sleep(0.7)
        await sink.close()
    codes = [m.get("70") for m in host.state.messages if m["t"] == "0800"]
    assert codes[0] == "001"
    assert codes[1:]
    assert set(codes[1:]) == {"301"}
    assert len(codes) >= 3


async def test_a_refused_sign_on_sends_nothing(store: Store) -> None:
    record(store, "SISOSIGN01")
    async with running_host() as host:
        host.add_rule(HostRule(mode="decline", code="91", mtis=("0800",), times=10**6))
        await deliver_all(store, iso_sink(host.port, store, max_attempts=2, connect_timeout=0.5))
    (view,) = store.deliveries()
    assert view.state == "dead"
    assert "sign-on refused" in (view.last_error or "")
    assert [m["t"] for m in host.state.messages] == ["0800"] * len(host.state.messages)


async def test_reconnects_with_backoff_when_the_host_comes_back(store: Store) -> None:
    record(store, "SISODOWN01")
    port = free_port()
    sink = iso_sink(port, store, connect_timeout=0.3, max_attempts=20)
    await deliver_all(store, sink, rounds=3, close=False)  # nobody listens yet
    (view,) = store.deliveries()
    assert view.state == "pending"
    assert "no connection" in (view.last_error or "")
    assert sink.pool is not None
    assert "Connect" in (sink.pool.last_error or "") or "refused" in (sink.pool.last_error or "")
    async with running_host(port=port) as host:
        await deliver_all(store, sink, close=False)
        await host.stop()  # the host goes away with the sink connected ...
        record(store, "SISODOWN02")
        await host.start()  # ... and comes back on the same port
        await deliver_all(store, sink)
    assert {v.state for v in store.deliveries()} == {"delivered"}
    assert net(host) == {"SISODOWN01": 1, "SISODOWN02": 1}
    assert host.state.connections >= 2


async def test_several_in_flight_on_one_connection_answered_out_of_order(store: Store) -> None:
    receipts = [f"SISOPIPE{i:02d}" for i in range(20)]
    record(store, *receipts)
    async with running_host() as host:
        host.add_rule(HostRule(mode="slow", delay=0.2, times=1))  # the first answer comes last
        await deliver_all(store, iso_sink(host.port, store))
    views = store.deliveries()
    assert {v.state for v in views} == {"delivered"}
    assert host.state.connections == 1
    assert host.state.max_in_flight > 1
    assert net(host) == dict.fromkeys(receipts, 1)
    # each delivery got its own answer: the document id names its own RRN
    for view in views:
        assert (view.document_id or "").startswith(view.transaction.receipt)


async def test_the_1993_layout_signs_on_with_1804_and_posts(store: Store) -> None:
    record(store, "SISO199301")
    async with running_host(spec="1993") as host:
        await deliver_all(store, iso_sink(host.port, store, message={"spec": "1993"}))
    (view,) = store.deliveries()
    assert view.state == "delivered"
    first = host.state.messages[0]
    assert (first["t"], first["24"]) == ("1804", "801")
    assert [m for m, _ in host.state.trail("SISO199301")] == ["1220"]
    assert net(host) == {"SISO199301": 1}
