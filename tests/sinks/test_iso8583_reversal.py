"""Unknown outcomes, message by message: advices repeated as 0221 with the same STAN and
RRN; requests reversed (0420, repeated as 0421) before the original goes again — the
host books each transaction exactly once net."""

from __future__ import annotations

import asyncio
import dataclasses

from pesabridge.devtools.iso8583_host import HostRule
from pesabridge.model import Direction, Entry
from pesabridge.store import Sighting, Store

from ..helpers import observed, payment
from .iso8583_support import deliver_all, financial, iso_sink, net, record, running_host

REQUEST = {"message": {"mti": "request"}}


def stans(host: object, rrn: str) -> list[str]:
    return [stan for _mti, stan in host.state.trail(rrn)]  # type: ignore[attr-defined]


async def test_an_unanswered_advice_is_repeated_with_the_same_stan_and_rrn(store: Store) -> None:
    record(store, "SISOADV001")
    async with running_host() as host:
        host.add_rule(HostRule(mode="silent", times=2))  # booked, but the answers are lost
        await deliver_all(store, iso_sink(host.port, store, repeats=1))
    (view,) = store.deliveries()
    assert view.state == "delivered"
    assert financial(host, "SISOADV001") == ["0220", "0221", "0221"]
    assert len(set(stans(host, "SISOADV001"))) == 1
    assert net(host) == {"SISOADV001": 1}
    detail = store.delivery(view.id)
    assert detail is not None
    # the journal is not an attempt: the history is exactly the worker's two tries
    assert [(a.number, a.outcome) for a in detail.attempts] == [(1, "retry"), (2, "delivered")]
    assert detail.attempts[0].unknown_outcome
    assert "repeated as 0221" in (detail.attempts[0].error or "")
    assert detail.exchange is not None
    assert (detail.exchange.phase, detail.exchange.exchange.code) == ("posted", "00")


async def test_an_unanswered_request_is_reversed_before_it_goes_again(store: Store) -> None:
    record(store, "SISOREQ001")
    async with running_host() as host:
        host.add_rule(HostRule(mode="silent", mtis=("0200",)))  # posted; the 0210 is lost
        await deliver_all(store, iso_sink(host.port, store, **REQUEST))
    (view,) = store.deliveries()
    assert view.state == "delivered"
    trail = host.state.trail("SISOREQ001")
    assert [mti for mti, _ in trail] == ["0200", "0420", "0200"]
    first, reversal, again = (stan for _, stan in trail)
    assert len({first, reversal, again}) == 3  # each exchange its own STAN
    quoted = next(m for m in host.state.messages if m["t"] == "0420")["90"]
    assert quoted.startswith("0200" + first)  # the reversal names what it reverses
    assert net(host) == {"SISOREQ001": 1}


async def test_an_unanswered_reversal_is_repeated_as_0421_until_answered(store: Store) -> None:
    record(store, "SISOREV001")
    async with running_host() as host:
        host.add_rule(HostRule(mode="silent", mtis=("0200",)))
        host.add_rule(HostRule(mode="silent", mtis=("0420", "0421"), times=3, post=False))
        await deliver_all(store, iso_sink(host.port, store, repeats=1, **REQUEST))
    (view,) = store.deliveries()
    assert view.state == "delivered"
    trail = host.state.trail("SISOREV001")
    assert [mti for mti, _ in trail] == ["0200", "0420", "0421", "0421", "0421", "0200"]
    assert len({stan for _, stan in trail[1:5]}) == 1  # repeats keep the reversal's STAN
    assert net(host) == {"SISOREV001": 1}


async def test_a_slow_answer_is_reversed_and_the_late_answer_ignored(store: Store) -> None:
    record(store, "SISOSLOW01")
    async with running_host() as host:
        host.add_rule(HostRule(mode="slow", delay=0.6, mtis=("0200",)))
        sink = iso_sink(host.port, store, **REQUEST)
        await deliver_all(store, sink, close=False)
        await asyncio.sleep(0.5)  # the late 0210 arrives
        pool = sink.pool
        assert pool is not None
        late = sum(c.late for c in pool._slots if c is not None)
        await sink.close()
    assert late == 1
    assert [m for m, _ in host.state.trail("SISOSLOW01")] == ["0200", "0420", "0200"]
    assert net(host) == {"SISOSLOW01": 1}
    assert store.deliveries()[0].state == "delivered"


async def test_a_dropped_connection_after_posting_reverses_a_request(store: Store) -> None:
    record(store, "SISODROP01")
    async with running_host() as host:
        host.add_rule(HostRule(mode="drop", mtis=("0200",)))  # booked, then hung up
        sink = iso_sink(host.port, store, **REQUEST)
        await deliver_all(store, sink, close=False)
        connects = sink.pool.connects if sink.pool else 0
        await sink.close()
    assert connects == 2  # reconnected (and signed on again)
    assert [m for m, _ in host.state.trail("SISODROP01")] == ["0200", "0420", "0200"]
    assert net(host) == {"SISODROP01": 1}
    assert store.deliveries()[0].state == "delivered"


async def test_a_dropped_connection_before_posting_repeats_an_advice(store: Store) -> None:
    record(store, "SISODROP02")
    async with running_host() as host:
        host.add_rule(HostRule(mode="drop", post=False))  # lost before the host booked it
        await deliver_all(store, iso_sink(host.port, store))
    assert [m for m, _ in host.state.trail("SISODROP02")] == ["0220", "0221"]
    assert net(host) == {"SISODROP02": 1}


async def test_never_answering_host_ends_in_a_dead_letter_with_the_reversal_pending(
    store: Store,
) -> None:
    record(store, "SISONONE01")
    async with running_host() as host:
        host.add_rule(HostRule(mode="silent", times=10**6))
        sink = iso_sink(host.port, store, repeats=0, max_attempts=3, **REQUEST)
        await deliver_all(store, sink)
        (view,) = store.deliveries()
        assert view.state == "dead"
        assert "reversal" in (view.last_error or "")
        # the host answers again: a replay finishes the reversal, then posts once
        host.clear_rules()
        store.replay(dead=True)
        await deliver_all(store, iso_sink(host.port, store, **REQUEST))
    assert store.deliveries()[0].state == "delivered"
    mtis = [m for m, _ in host.state.trail("SISONONE01")]
    assert mtis[0] == "0200"
    assert mtis[-1] == "0200"
    assert set(mtis[1:-1]) <= {"0420", "0421"}
    assert "0200" not in mtis[1:-1]
    assert net(host) == {"SISONONE01": 1}


async def test_a_provider_reversal_reverses_the_posting_it_names(store: Store) -> None:
    original = payment("SISOPREV01")
    reversal = dataclasses.replace(
        payment("SISOPREV02"),
        entry=Entry.REVERSAL,
        direction=Direction.DEBIT,
        related_receipt="SISOPREV01",
    )
    store.record([observed(original)], Sighting("callback", "callback"), lambda _t: ["core"])
    store.record([observed(reversal)], Sighting("callback", "callback"), lambda _t: ["core"])
    async with running_host() as host:
        await deliver_all(store, iso_sink(host.port, store))
    assert {v.state for v in store.deliveries()} == {"delivered"}
    assert [m for m, _ in host.state.trail("SISOPREV01")] == ["0220", "0420"]
    advice_stan = host.state.trail("SISOPREV01")[0][1]
    quoted = next(m for m in host.state.messages if m["t"] == "0420")["90"]
    assert quoted.startswith("0220" + advice_stan)
    assert net(host) == {"SISOPREV01": 0}


async def test_94_to_a_request_sent_again_after_its_reversal_is_not_delivered(
    store: Store,
) -> None:
    record(store, "SISODUPR01")
    async with running_host() as host:
        host.add_rule(HostRule(mode="silent", mtis=("0200",)))  # posted, answer lost
        host.add_rule(HostRule(mode="duplicate", mtis=("0200",)))  # then 94 to the new one
        await deliver_all(store, iso_sink(host.port, store, **REQUEST))
    (view,) = store.deliveries()
    assert view.state == "dead"
    assert "duplicate of the posting it reversed" in (view.last_error or "")
    assert [m for m, _ in host.state.trail("SISODUPR01")] == ["0200", "0420", "0200"]
    assert net(host) == {"SISODUPR01": 0}  # nothing posted: a person must look, not a "delivered"


async def test_a_worker_holding_a_lapsed_lease_cannot_overwrite_the_journal(store: Store) -> None:
    from pesabridge.store import exchanges

    record(store, "SISOCAS001")
    (view,) = store.deliveries()
    first = exchanges.Exchange("sent", "0200", 1, "SISOCAS001", "2026-11-28T08:00:00+00:00")
    with store.write() as conn:
        version = exchanges.save(conn, view.id, first, None)
        assert version is not None
        assert exchanges.save(conn, view.id, first.but(phase="reversing"), version) is not None
        # a second writer that read the first version loses
        assert exchanges.save(conn, view.id, first.but(phase="posted"), version) is None
        assert exchanges.save(conn, view.id, first, None) is None  # and cannot start anew
    with store.read() as conn:
        found, _ = exchanges.load(conn, view.id)
    assert found is not None
    assert found.phase == "reversing"
    detail = store.delivery(view.id)
    assert detail is not None
    assert detail.attempts == []  # the journal is no attempt
    journal = detail.exchange
    assert journal is not None
    assert (journal.sink, journal.phase, journal.unresolved) == ("core", "reversing", True)
    assert "0200 STAN 000001 RRN SISOCAS001" in journal.describe()
