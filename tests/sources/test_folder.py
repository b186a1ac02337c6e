"""The drop folder: complete files only, each content once, done/ and failed/."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pesabridge.config import parse_config
from pesabridge.routing import Routing
from pesabridge.sources.base import SourceContext
from pesabridge.sources.folder import FolderSource
from pesabridge.store import Store

STATEMENT = "mpesa-statement/ORG_600977_Utility Account_Completed_20240507070000.csv"


def folder_source(store: Store, inbox: Path, stable_for: float = 5.0) -> FolderSource:
    config = parse_config(
        {
            "sources": [
                {"name": "inbox", "type": "folder", "path": str(inbox), "stable_for": stable_for}
            ],
            "sinks": [{"name": "erp", "type": "http", "url": "http://127.0.0.1:9/x"}],
            "routes": [{"from": ["inbox"], "to": ["erp"], "entries": ["payment"]}],
        },
        environ={},
    )
    context = SourceContext(store, Routing(config.routes), inbox.parent)
    return FolderSource(config.sources[0], context)  # type: ignore[arg-type]


def test_file_taken_only_after_it_stops_changing(
    store: Store, samples_dir: Path, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    source = folder_source(store, inbox, stable_for=5.0)
    content = (samples_dir / STATEMENT).read_bytes()
    target = inbox / "ORG_600977.csv"
    target.write_bytes(content[:300])  # a copy still in progress
    assert source.poll_once(now=100.0) == []
    target.write_bytes(content)  # the copy grows
    os.utime(target, ns=(1, 2))
    assert source.poll_once(now=104.0) == []  # changed since last look: the clock restarts
    assert source.poll_once(now=108.0) == []  # stable for 4 s only
    (summary,) = source.poll_once(now=109.5)
    assert summary.new == 12
    assert not target.exists()
    assert (inbox / "done" / "ORG_600977.csv").exists()
    # only payments are routed to the sink here (entries: [payment])
    assert store.status()["deliveries"]["erp"] == {"pending": 5}
    (state,) = store.status()["sources"]
    assert state["name"] == "inbox"
    assert state["last_success_at"] is not None


def test_same_file_dropped_again_under_another_name_is_not_ingested_twice(
    store: Store, samples_dir: Path, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    source = folder_source(store, inbox, stable_for=0)
    shutil.copy(samples_dir / STATEMENT, inbox / "first.csv")
    assert [s.new for s in source.poll_once()] == [12]
    shutil.copy(samples_dir / STATEMENT, inbox / "second-copy.csv")
    (again,) = source.poll_once()
    assert again.skipped
    assert sorted(p.name for p in (inbox / "done").iterdir()) == ["first.csv", "second-copy.csv"]
    assert store.status()["transactions"] == 12


def test_unreadable_file_goes_to_failed_with_its_reason(store: Store, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    source = folder_source(store, inbox, stable_for=0)
    (inbox / "mystery.csv").write_text("not,a,statement\n")
    (summary,) = source.poll_once()
    assert summary.error is not None
    failed = inbox / "failed"
    assert (failed / "mystery.csv").exists()
    reason = (failed / "mystery.csv.error.txt").read_text()
    assert "no known format recognises this file" in reason
    # a good file dropped afterwards still flows
    assert source.poll_once() == []


def test_name_clash_in_done_never_overwrites(
    store: Store, samples_dir: Path, tmp_path: Path
) -> None:
    inbox = tmp_path / "inbox"
    (inbox / "done").mkdir(parents=True)
    (inbox / "done" / "statement.csv").write_text("an older file with the same name\n")
    source = folder_source(store, inbox, stable_for=0)
    shutil.copy(samples_dir / STATEMENT, inbox / "statement.csv")
    source.poll_once()
    done = sorted(p.name for p in (inbox / "done").iterdir())
    assert len(done) == 2
    assert (inbox / "done" / "statement.csv").read_text() == "an older file with the same name\n"
