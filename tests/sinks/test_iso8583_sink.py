"""The ISO 8583 sink against the real test host over TCP: answers, declines, 94."""

from __future__ import annotations

from typing import Any

import pytest

from pesabridge.config import parse_config
from pesabridge.devtools.iso8583_host import HostRule
from pesabridge.errors import ConfigError
from pesabridge.store import Store

from .iso8583_support import deliver_all, financial, iso_sink, net, record, running_host


async def test_advices_are_posted_once_each_after_a_sign_on(store: Store) -> None:
    record(store, "SISO000001", "SISO000002", "SISO000003")
    async with running_host() as host:
        await deliver_all(store, iso_sink(host.port, store))
    views = {v.transaction.receipt: v for v in store.deliveries()}
    assert {v.state for v in views.values()} == {"delivered"}
    assert net(host) == {"SISO000001": 1, "SISO000002": 1, "SISO000003": 1}
    first = host.state.messages[0]
    assert (first["t"], first["70"]) == ("0800", "001")  # sign-on before anything else
    assert financial(host, "SISO000001") == ["0220"]
    assert views["SISO000001"].document_id is not None
    assert host.state.connections == 1


async def test_a_decline_is_a_dead_letter_and_91_is_retried(store: Store) -> None:
    async with running_host() as host:
        record(store, "SISODECL01")
        host.add_rule(HostRule(mode="decline", code="05"))
        await deliver_all(store, iso_sink(host.port, store))
        record(store, "SISORETR01")
        host.add_rule(HostRule(mode="decline", code="91"))  # once
        await deliver_all(store, iso_sink(host.port, store))
    views = {v.transaction.receipt: v for v in store.deliveries()}
    declined, retried = views["SISODECL01"], views["SISORETR01"]
    assert declined.state == "dead"
    assert declined.attempts == 1
    assert "answered 05" in (declined.last_error or "")
    assert retried.state == "delivered"
    assert retried.attempts == 2
    assert net(host) == {"SISORETR01": 1}
    # an advice told to try again is repeated: the same STAN, so the host cannot book twice
    assert host.state.trail("SISORETR01")[1][0] == "0221"
    assert len({stan for _mti, stan in host.state.trail("SISORETR01")}) == 1


async def test_a_request_told_to_try_again_goes_again_with_a_new_stan(store: Store) -> None:
    record(store, "SISORETR02")
    async with running_host() as host:
        host.add_rule(HostRule(mode="decline", code="96"))
        await deliver_all(store, iso_sink(host.port, store, message={"mti": "request"}))
    (view,) = store.deliveries()
    assert view.state == "delivered"
    trail = host.state.trail("SISORETR02")
    assert [mti for mti, _ in trail] == ["0200", "0200"]  # answered: nothing to reverse
    assert len({stan for _, stan in trail}) == 2
    assert net(host) == {"SISORETR02": 1}


async def test_94_duplicate_counts_as_delivered(store: Store) -> None:
    record(store, "SISODUPL01")
    async with running_host() as host:
        host.add_rule(HostRule(mode="duplicate"))
        await deliver_all(store, iso_sink(host.port, store))
    (view,) = store.deliveries()
    assert view.state == "delivered"
    assert view.attempts == 1
    assert "94" in (view.last_error or "")  # the note says why it counts


async def test_an_unknown_code_is_a_dead_letter_and_the_table_is_configurable(
    store: Store,
) -> None:
    async with running_host() as host:
        record(store, "SISOCODE01")
        host.add_rule(HostRule(mode="decline", code="N7"))
        await deliver_all(store, iso_sink(host.port, store, response_codes={"51": "retry"}))
        record(store, "SISOCODE02")
        host.add_rule(HostRule(mode="decline", code="51", times=1))
        await deliver_all(store, iso_sink(host.port, store, response_codes={"51": "retry"}))
    views = {v.transaction.receipt: v for v in store.deliveries()}
    assert views["SISOCODE01"].state == "dead"
    assert "not in the response code table" in (views["SISOCODE01"].last_error or "")
    assert views["SISOCODE02"].state == "delivered"


@pytest.mark.parametrize(
    ("extra", "problem"),
    [
        ({"message": {"spec": "no-such-spec"}}, "unknown ISO 8583 spec"),
        ({"message": {"mti": "0100"}}, "neither advice"),
        ({"message": {"processing_codes": {"payment": "12"}}}, "a processing code is 6"),
        ({"message": {"processing_codes": {"rent": "000000"}}}, "'rent' is not an entry"),
        ({"framing": {"tpdu": "60000"}}, "not hex"),
        ({"framing": {"tpdu": "600000"}}, "a TPDU is 5"),
        ({"framing": {"length": "ascii2"}}, "framing.length"),
        ({"response_codes": {"910": "retry"}}, "2 characters"),
        ({"response_codes": {"91": "maybe"}}, "response_codes.91"),
    ],
)
def test_config_problems_name_the_option(extra: dict[str, Any], problem: str) -> None:
    section = {"name": "core", "type": "iso8583", "host": "h", "port": 8583, **extra}
    with pytest.raises(ConfigError) as caught:
        parse_config({"sinks": [section]}, environ={})
    assert problem in str(caught.value)


def test_defaults_follow_the_spec_version() -> None:
    config = iso_sink(1, None).config
    assert config.code_table()["91"] == "retry"
    assert config.reversal_codes() == {"00", "25", "94"}
    v1993 = iso_sink(1, None, message={"spec": "1993"}, response_codes={"909": "dead"}).config
    assert v1993.code_table()["000"] == "approved"
    assert v1993.code_table()["909"] == "dead"
