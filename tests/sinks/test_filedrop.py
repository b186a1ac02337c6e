"""File-drop sinks: batches cut on a schedule or every N, fixed once cut, uploaded to a
local folder and to real FTP and SFTP servers under a temporary name, retried with the
same bytes under the same name."""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import mt940
import pytest
from lxml import etree

from pesabridge.encoders._iso20022 import schema_path
from pesabridge.model import EAT
from pesabridge.sinks.cron import Cron, CronError
from pesabridge.sinks.filedrop import FileDropSink
from pesabridge.sinks.filedrop_config import FileDropConfig
from pesabridge.store import Sighting, Store
from pesabridge.store import batches as db
from tests.fixtures.servers import PASSWORD, USER, FileServer

from ..helpers import observed, payment

# 2024-05-07 00:45 in Nairobi: after the 00:30 cut of the 6th.
AFTER_CUT = datetime(2024, 5, 7, 0, 45, tzinfo=EAT)
MINUTES_TO_7TH = 12 * 60 + 10  # BASE_TIME is 12:00 EAT on the 6th: 00:10 EAT on the 7th


def record(store: Store, receipts: list[str], sink: str = "drop", **kw: Any) -> None:
    store.record(
        [observed(payment(r, minutes=i, **kw)) for i, r in enumerate(receipts)],
        Sighting("callback", "callback"),
        lambda _t: [sink],
    )


def make_sink(tmp_path: Path, **options: Any) -> FileDropSink:
    section: dict[str, Any] = {"name": "drop", "type": "file-drop", "transport": "local"}
    if options.get("transport", "local") == "local":
        section["path"] = str(tmp_path / "out")
    section.update(options)
    return FileDropSink(FileDropConfig.model_validate(section), base_dir=tmp_path)


def remote(server: FileServer, **options: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "transport": server.kind,
        "host": server.host,
        "port": server.port,
        "user": USER,
        "password": PASSWORD,
        "timeout": 5,
    }
    section.update(server.extra.get("options", {}))
    section.update(options)
    return section


def states(store: Store) -> dict[str, int]:
    return dict(store.status()["deliveries"].get("drop", {}))


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def upload_all(sink: FileDropSink, store: Store) -> list[db.BatchRow]:
    done = []
    while (batch := sink.upload_once(store, "test", timedelta(seconds=30))) is not None:
        done.append(batch)
        if batch.state != "uploaded":
            break
    return done


# -- the schedule ------------------------------------------------------------------------


def test_cron_previous_fire_in_nairobi() -> None:
    cron = Cron.parse("30 0 * * *", "Africa/Nairobi")
    assert cron.previous(AFTER_CUT) == datetime(2024, 5, 6, 21, 30, tzinfo=UTC)
    before = datetime(2024, 5, 7, 0, 29, tzinfo=EAT)
    assert cron.previous(before) == datetime(2024, 5, 5, 21, 30, tzinfo=UTC)
    every_quarter = Cron.parse("*/15 8-17 * * MON-FRI", "Africa/Nairobi")
    saturday = datetime(2024, 5, 11, 10, 7, tzinfo=EAT)
    assert every_quarter.previous(saturday) == datetime(2024, 5, 10, 17, 45, tzinfo=EAT)
    lists = Cron.parse("0,30 6 1,15 * *", "Africa/Kampala")
    assert lists.previous(datetime(2024, 5, 14, tzinfo=EAT)) == datetime(
        2024, 5, 1, 6, 30, tzinfo=EAT
    )


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("30 0 * *", "five fields"),
        ("61 0 * * *", "minute"),
        ("0 0 * * 8", "day of week"),
        ("*/0 * * * *", "step"),
    ],
)
def test_cron_refuses_bad_expressions(expression: str, problem: str) -> None:
    with pytest.raises(CronError, match=problem):
        Cron.parse(expression)


def test_config_problems_are_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="schedule"):
        make_sink(tmp_path, schedule="30 0 * *")
    with pytest.raises(ValueError, match="give a schedule"):
        make_sink(tmp_path)
    with pytest.raises(ValueError, match="statement encoder"):
        make_sink(tmp_path, every=2, encoder="json")
    with pytest.raises(ValueError, match=r"host_key_fingerprint|known_hosts"):
        make_sink(tmp_path, every=2, transport="sftp", host="h", user="u", password="p")


def test_scheduled_cut_takes_the_previous_day_only(store: Store, tmp_path: Path) -> None:
    record(store, ["SCH0000001", "SCH0000002"])
    store.record(
        [observed(payment("SCH0000003", minutes=MINUTES_TO_7TH))],
        Sighting("callback", "callback"),
        lambda _t: ["drop"],
    )
    sink = make_sink(tmp_path, schedule="30 0 * * *")
    results = sink.cutter.due_cuts(store, now=AFTER_CUT)
    assert [b.file_name for r in results for b in r.batches] == ["drop_600977_20240506_001.xml"]
    assert states(store) == {"in_flight": 2, "pending": 1}
    # the same fire is not cut twice; the 7th waits for the next one
    assert sink.cutter.due_cuts(store, now=AFTER_CUT + timedelta(hours=3)) == []
    upload_all(sink, store)
    assert files(tmp_path / "out") == ["drop_600977_20240506_001.xml"]
    assert states(store) == {"delivered": 2, "pending": 1}
    document = (tmp_path / "out" / "drop_600977_20240506_001.xml").read_bytes()
    xsd = etree.XMLSchema(etree.parse(str(schema_path("camt.053", "02"))))
    assert xsd.validate(etree.fromstring(document)), xsd.error_log
    # the next day's fire cuts the 7th
    sink.cutter.due_cuts(store, now=AFTER_CUT + timedelta(days=1))
    upload_all(sink, store)
    assert files(tmp_path / "out") == [
        "drop_600977_20240506_001.xml",
        "drop_600977_20240507_001.xml",
    ]
    assert states(store) == {"delivered": 3}


def test_every_n_cuts_full_batches_with_sequences(store: Store, tmp_path: Path) -> None:
    record(store, [f"EVN{i:07d}" for i in range(7)])
    sink = make_sink(tmp_path, every=3, encoder="csv")
    sink.cutter.due_cuts(store)
    assert states(store) == {"in_flight": 6, "pending": 1}
    upload_all(sink, store)
    assert files(tmp_path / "out") == [
        "drop_600977_20240506_001.csv",
        "drop_600977_20240506_002.csv",
    ]
    with store.read() as conn:
        listed = db.list_batches(conn, sink="drop")
    # the second batch opens with the first one's closing balance
    assert [b.closing_balance for b in reversed(listed)] == ["300.00", "600.00"]
    assert {b.trigger for b in listed} == {"count"}
    assert states(store) == {"delivered": 6, "pending": 1}


def test_a_cut_batch_is_fixed(store: Store, tmp_path: Path) -> None:
    record(store, ["FIX0000001", "FIX0000002"])
    sink = make_sink(tmp_path, every=2)
    [result] = sink.cutter.due_cuts(store)
    [cut] = result.batches
    with store.read() as conn:
        found = db.get_batch(conn, cut.batch_id or 0)
    assert found is not None
    batch, members = found
    assert batch.content is not None
    assert len(members) == 2
    assert hashlib.sha256(batch.content).hexdigest() == batch.sha256 == cut.sha256
    # a failed upload leaves the batch as it was; the retry sends the same bytes
    (tmp_path / "out").write_text("a file where the folder should be")
    [failed] = upload_all(sink, store)
    assert failed.state == "failed"
    (tmp_path / "out").unlink()
    with store.write() as conn:  # due now rather than after the backoff
        conn.execute(db.batches.update().values(next_attempt_at=datetime.now(UTC)))
    [done] = upload_all(sink, store)
    assert done.state == "uploaded"
    assert (tmp_path / "out" / batch.file_name).read_bytes() == batch.content
    assert files(tmp_path / "out") == [batch.file_name]


def test_a_different_file_under_the_name_is_never_overwritten(store: Store, tmp_path: Path) -> None:
    record(store, ["CNF0000001"])
    sink = make_sink(tmp_path, every=1)
    sink.cutter.due_cuts(store)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "drop_600977_20240506_001.xml").write_text("someone else's")
    [batch] = upload_all(sink, store)
    assert batch.state == "failed"
    assert "never overwritten" in (batch.last_error or "")
    assert (tmp_path / "out" / "drop_600977_20240506_001.xml").read_text() == "someone else's"
    assert states(store) == {"in_flight": 1}


def test_dry_run_cuts_nothing(store: Store, tmp_path: Path) -> None:
    record(store, ["DRY0000001"])
    sink = make_sink(tmp_path, every=5)
    result = sink.cutter.cut(store, trigger="manual", dry_run=True)
    assert [b.file_name for b in result.batches] == ["drop_600977_20240506_001.xml"]
    assert states(store) == {"pending": 1}
    with store.read() as conn:
        assert db.list_batches(conn) == []


# -- real servers -----------------------------------------------------------------------


def _due_now(store: Store) -> None:
    with store.write() as conn:
        conn.execute(db.batches.update().values(next_attempt_at=datetime.now(UTC)))


def test_sftp_drop_survives_a_connection_cut_mid_upload(
    store: Store, tmp_path: Path, sftp_server: FileServer
) -> None:
    record(store, [f"SFT{i:07d}" for i in range(4)])
    sink = make_sink(tmp_path, every=4, **remote(sftp_server))
    sink.cutter.due_cuts(store)
    sftp_server.knobs.cut_upload_after = 200
    [failed] = upload_all(sink, store)
    assert failed.state == "failed"
    assert sftp_server.knobs.cuts == 1
    assert "drop_600977_20240506_001.xml" not in files(sftp_server.root)
    _due_now(store)
    [done] = upload_all(sink, store)
    assert done.state == "uploaded"
    assert files(sftp_server.root) == ["drop_600977_20240506_001.xml"]
    with store.read() as conn:
        found = db.get_batch(conn, done.id)
    assert found is not None
    assert (sftp_server.root / done.file_name).read_bytes() == found[0].content
    assert states(store) == {"delivered": 4}


def test_sftp_refused_rename_is_retried_with_the_same_file(
    store: Store, tmp_path: Path, sftp_server: FileServer
) -> None:
    record(store, ["SFR0000001", "SFR0000002"])
    sink = make_sink(
        tmp_path,
        every=2,
        **remote(
            sftp_server, known_hosts=None, host_key_fingerprint=sftp_server.extra["fingerprint"]
        ),
    )
    sink.cutter.due_cuts(store)
    sftp_server.knobs.refuse_renames = 1
    [failed] = upload_all(sink, store)
    assert failed.state == "failed"
    assert files(sftp_server.root) == [".drop_600977_20240506_001.xml.part"]
    _due_now(store)
    [done] = upload_all(sink, store)
    assert done.state == "uploaded"
    assert files(sftp_server.root) == ["drop_600977_20240506_001.xml"]


def test_ftp_drop_mt940_after_a_cut_and_a_refused_rename(
    store: Store, tmp_path: Path, ftp_server: FileServer
) -> None:
    record(store, [f"FTP{i:07d}" for i in range(3)])
    sink = make_sink(tmp_path, every=3, encoder="mt940", **remote(ftp_server))
    sink.cutter.due_cuts(store)
    ftp_server.knobs.cut_upload_after = 50
    assert upload_all(sink, store)[0].state == "failed"
    assert ftp_server.knobs.cuts == 1
    _due_now(store)
    ftp_server.knobs.refuse_renames = 1
    assert upload_all(sink, store)[0].state == "failed"
    _due_now(store)
    [done] = upload_all(sink, store)
    assert done.state == "uploaded"
    assert files(ftp_server.root) == ["drop_600977_20240506_001.sta"]
    document = (ftp_server.root / "drop_600977_20240506_001.sta").read_bytes()
    parsed = mt940.models.Transactions()
    parsed.parse(document.decode("ascii"))
    assert len(parsed.transactions) == 3
    assert sum(t.data["amount"].amount for t in parsed.transactions) == Decimal("300.00")
    assert states(store) == {"delivered": 3}


def test_ftps_drop(store: Store, tmp_path: Path, ftps_server: FileServer) -> None:
    record(store, ["FTS0000001"])
    sink = make_sink(tmp_path, every=1, encoder="ofx", **remote(ftps_server))
    sink.cutter.due_cuts(store)
    [done] = upload_all(sink, store)
    assert done.state == "uploaded", done.last_error
    assert files(ftps_server.root) == ["drop_600977_20240506_001.ofx"]


def test_period_is_the_local_day(store: Store, tmp_path: Path) -> None:
    store.record(
        [observed(payment("DAY0000001", minutes=MINUTES_TO_7TH))],
        Sighting("callback", "callback"),
        lambda _t: ["drop"],
    )
    sink = make_sink(tmp_path, every=1)
    [result] = sink.cutter.due_cuts(store)
    assert [b.period for b in result.batches] == [date(2024, 5, 7)]


def test_a_paused_sink_neither_cuts_nor_uploads(store: Store, tmp_path: Path) -> None:
    import asyncio

    from pesabridge.store.outbox import set_paused

    record(store, ["PAU0000001"])
    sink = make_sink(tmp_path, every=1)
    with store.write() as conn:
        set_paused(conn, "drop", True, datetime.now(UTC), "bank maintenance")
    sink.tick(store, "test", timedelta(seconds=30), asyncio.Event())
    assert states(store) == {"pending": 1}
    with store.write() as conn:
        set_paused(conn, "drop", False, datetime.now(UTC), None)
    sink.tick(store, "test", timedelta(seconds=30), asyncio.Event())
    assert states(store) == {"delivered": 1}
    assert files(tmp_path / "out") == ["drop_600977_20240506_001.xml"]
