"""FTP, FTPS and SFTP sources against real servers started by the fixtures."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncssh
import pytest
import structlog
from sqlalchemy import select

from pesabridge.config import parse_config
from pesabridge.devtools.statements import write_statement
from pesabridge.errors import ConfigError
from pesabridge.registry import source_class
from pesabridge.routing import Routing
from pesabridge.sources.base import SourceContext
from pesabridge.sources.poller import FilePoller
from pesabridge.sources.remotefs import RemoteConfigError, RemoteUnavailable, safe_local_name
from pesabridge.store import Store
from pesabridge.store import remote as remote_ledger
from pesabridge.store.schema import remote_files

from ..fixtures.servers import FileServer

STATEMENT = "mpesa-statement/ORG_600977_Utility Account_Completed_20240507070000.csv"
END = datetime(2024, 5, 7, 7, 0, 0)


@pytest.fixture
def sqlite_store(sqlite_url: str) -> Any:
    store = Store.open(sqlite_url)
    yield store
    store.close()


def make_source(store: Store, server: FileServer, tmp_path: Path, **options: Any) -> FilePoller:
    section = server.source(**{"stable_for": 0, "work_dir": str(tmp_path / "work"), **options})
    config = parse_config(
        {
            "sources": [section],
            "sinks": [{"name": "erp", "type": "http", "url": "http://127.0.0.1:9/x"}],
            "routes": [{"from": [section["name"]], "to": ["erp"]}],
        },
        environ={},
        base_dir=tmp_path,
    )
    context = SourceContext(store, Routing(config.routes), tmp_path)
    poller: FilePoller = source_class(section["type"])(config.sources[0], context)
    return poller


def statement(path: Path, payments: int, seed: int) -> bytes:
    write_statement(path, payments, end=END, seed=seed)
    return path.read_bytes()


SERVERS = ["ftp_server", "ftps_server", "sftp_server"]


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest) -> FileServer:
    value: FileServer = request.getfixturevalue(request.param)
    return value


def test_a_file_is_taken_once_and_left_by_default(
    server: FileServer, sqlite_store: Store, samples_dir: Path, tmp_path: Path
) -> None:
    (server.root / "statement.csv").write_bytes((samples_dir / STATEMENT).read_bytes())
    source = make_source(sqlite_store, server, tmp_path)
    (summary,) = source.poll_once()
    assert (summary.new, summary.error) == (12, None)
    assert (server.root / "statement.csv").exists()  # on_success: leave
    assert source.poll_once() == []  # known by path, size and mtime: not fetched again
    assert list((tmp_path / "work").iterdir()) == []  # nothing left in the work dir
    with sqlite_store.read() as conn:
        (view,) = remote_ledger.list_files(conn)
    assert view.status == "done"
    assert view.path is not None
    assert view.path.startswith(f"{server.kind}://pesa@127.0.0.1:{server.port}/")
    assert view.accepted == 12
    (state,) = sqlite_store.status()["sources"]
    assert state["last_success_at"] is not None


def test_growing_file_is_not_taken_until_stable(
    ftp_server: FileServer, sqlite_store: Store, samples_dir: Path, tmp_path: Path
) -> None:
    content = (samples_dir / STATEMENT).read_bytes()
    target = ftp_server.root / "growing.csv"
    target.write_bytes(content[:300])
    source = make_source(sqlite_store, ftp_server, tmp_path, stable_for=10)
    assert source.poll_once(now=100.0) == []
    target.write_bytes(content)  # the upload goes on
    assert source.poll_once(now=105.0) == []  # changed: the clock restarts
    assert source.poll_once(now=114.0) == []  # stable for 9 s only
    (summary,) = source.poll_once(now=115.5)
    assert summary.new == 12


def test_done_marker_flow(
    sftp_server: FileServer, sqlite_store: Store, samples_dir: Path, tmp_path: Path
) -> None:
    source = make_source(
        sqlite_store,
        sftp_server,
        tmp_path,
        stable_for=3600,
        require_done_marker=True,
        on_success="archive",
        archive_dir="archive",
    )
    (sftp_server.root / "s.csv").write_bytes((samples_dir / STATEMENT).read_bytes())
    assert source.poll_once(now=1.0) == []
    assert [p.explanation for p in source.dry_run(now=2.0)] == ["wait: no done marker yet"]
    (sftp_server.root / "s.csv.done").write_bytes(b"")
    (summary,) = source.poll_once(now=3.0)  # taken at once: the producer says it is complete
    assert summary.new == 12
    assert sorted(p.name for p in (sftp_server.root / "archive").iterdir()) == [
        "s.csv",
        "s.csv.done",
    ]
    assert not (sftp_server.root / "s.csv").exists()


@pytest.mark.parametrize("kind", ["ftp_server", "sftp_server"])
def test_dropped_connection_mid_download_resumes(
    kind: str,
    request: pytest.FixtureRequest,
    sqlite_store: Store,
    tmp_path: Path,
) -> None:
    server: FileServer = request.getfixturevalue(kind)
    content = statement(server.root / "big.csv", 4000, seed=3)
    assert len(content) > 1_000_000
    source = make_source(sqlite_store, server, tmp_path)
    server.knobs.cut_after = 600_000
    with pytest.raises(RemoteUnavailable):
        source.poll_once()
    assert server.knobs.cuts == 1
    (part,) = (tmp_path / "work").glob("*/big.csv.part")
    assert 0 < part.stat().st_size < len(content)
    (summary,) = source.poll_once()  # resumes from the partial download
    assert (summary.rows_read, summary.new, summary.error) == (8000, 8000, None)
    assert sqlite_store.status()["transactions"] == 8000


def test_same_file_uploaded_again_under_another_name_is_skipped(
    server: FileServer, sqlite_store: Store, samples_dir: Path, tmp_path: Path
) -> None:
    source = make_source(sqlite_store, server, tmp_path)
    content = (samples_dir / STATEMENT).read_bytes()
    (server.root / "first.csv").write_bytes(content)
    assert [s.new for s in source.poll_once()] == [12]
    (server.root / "renamed-copy.csv").write_bytes(content)
    (again,) = source.poll_once()
    assert again.skipped
    assert sqlite_store.status()["transactions"] == 12
    with sqlite_store.read() as conn:
        states = sorted(conn.execute(select(remote_files.c.status)).scalars())
    assert states == ["done", "skipped"]


def test_changed_file_under_the_same_name_is_taken_as_new(
    ftp_server: FileServer, sqlite_store: Store, tmp_path: Path
) -> None:
    source = make_source(sqlite_store, ftp_server, tmp_path)
    target = ftp_server.root / "daily.csv"
    statement(target, 5, seed=1)
    assert [s.new for s in source.poll_once()] == [10]
    assert source.poll_once() == []
    statement(target, 7, seed=2)  # the provider overwrites it with the next statement
    (summary,) = source.poll_once()
    assert (summary.new, summary.skipped) == (14, False)
    assert sqlite_store.status()["transactions"] == 24


def test_host_key_mismatch_is_refused_and_says_so(
    sftp_server: FileServer, sqlite_store: Store, tmp_path: Path
) -> None:
    other = asyncssh.generate_private_key("ssh-ed25519")
    offered = sftp_server.extra["fingerprint"]
    pinned = other.get_fingerprint("sha256")
    wrong = tmp_path / "wrong_known_hosts"
    wrong.write_text(f"[127.0.0.1]:{sftp_server.port} {other.export_public_key().decode()}")
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    cases: list[dict[str, Any]] = [
        {"known_hosts": str(wrong)},
        {"known_hosts": str(empty)},  # unknown host: never trusted on first use
        {"known_hosts": None, "host_key_fingerprint": pinned},
    ]
    for options in cases:
        source = make_source(sqlite_store, sftp_server, tmp_path, **options)
        with pytest.raises(RemoteConfigError, match="host key refused") as caught:
            source.poll_once()
        assert offered in str(caught.value)
    assert sftp_server.knobs.logins == 0  # no password was ever sent


def test_fingerprint_pin_and_private_key_with_passphrase(
    sftp_server: FileServer, sqlite_store: Store, samples_dir: Path, tmp_path: Path
) -> None:
    (sftp_server.root / "s.csv").write_bytes((samples_dir / STATEMENT).read_bytes())
    source = make_source(
        sqlite_store,
        sftp_server,
        tmp_path,
        known_hosts=None,
        host_key_fingerprint=sftp_server.extra["fingerprint"],
        password=None,
        private_key=str(sftp_server.extra["client_key"]),
        passphrase="key-pass",
    )
    assert [s.new for s in source.poll_once()] == [12]


def test_sftp_config_refuses_trust_on_first_use() -> None:
    with pytest.raises(ConfigError, match="pin the server's host key"):
        parse_config(
            {"sources": [{"name": "s", "type": "sftp", "host": "h", "user": "u", "password": "p"}]},
            environ={},
        )


async def test_wrong_password_is_reported_once_and_the_source_parks(
    ftp_server: FileServer, sqlite_store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    source = make_source(sqlite_store, ftp_server, tmp_path, password="wrong", poll_interval=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(stop))
    await asyncio.sleep(1.0)
    stop.set()
    await task
    assert ftp_server.knobs.failed_logins == 1  # not a retry storm
    (state,) = sqlite_store.status()["sources"]
    assert state["last_error"].startswith("configuration error:")
    assert "login refused" in state["last_error"]
    assert state["last_success_at"] is None


async def test_connection_failures_back_off_and_are_visible(
    sqlite_store: Store, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    server = FileServer("ftp", "127.0.0.1", port, tmp_path, knobs=None)  # type: ignore[arg-type]
    source = make_source(sqlite_store, server, tmp_path, poll_interval=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(source.run(stop))
    await asyncio.sleep(0.5)
    stop.set()
    await task
    (state,) = sqlite_store.status()["sources"]
    assert "ConnectionRefusedError" in state["last_error"]
    assert not state["last_error"].startswith("configuration error")


@pytest.mark.parametrize("kind", ["ftp_server", "sftp_server"])
def test_archive_delete_and_error_moves_happen_on_the_server(
    kind: str,
    request: pytest.FixtureRequest,
    sqlite_store: Store,
    samples_dir: Path,
    tmp_path: Path,
) -> None:
    server: FileServer = request.getfixturevalue(kind)
    root = server.root
    (root / "in").mkdir()
    (root / "in" / "good.csv").write_bytes((samples_dir / STATEMENT).read_bytes())
    (root / "in" / "bad.csv").write_text("not,a,statement\n")
    source = make_source(
        sqlite_store,
        server,
        tmp_path,
        remote_dir="in",
        on_success="archive",
        archive_dir="../archive",
        on_failure="move",
        error_dir="errors",
    )
    summaries = source.poll_once()
    assert sorted((s.name, s.error is not None) for s in summaries) == [
        ("bad.csv", True),
        ("good.csv", False),
    ]
    assert [p.name for p in (root / "archive").iterdir()] == ["good.csv"]
    assert sorted(p.name for p in (root / "in" / "errors").iterdir()) == [
        "bad.csv",
        "bad.csv.error.txt",
    ]
    reason = (root / "in" / "errors" / "bad.csv.error.txt").read_text()
    assert "no known format recognises this file" in reason
    assert sorted(p.name for p in (root / "in").iterdir()) == ["errors"]

    (root / "in" / "again.csv").write_bytes(statement(tmp_path / "x.csv", 3, seed=9))
    deleting = make_source(sqlite_store, server, tmp_path, remote_dir="in", on_success="delete")
    assert [s.new for s in deleting.poll_once()] == [6]
    assert not (root / "in" / "again.csv").exists()


def test_bad_file_is_failed_once_with_its_reason_and_never_retried(
    sftp_server: FileServer, sqlite_store: Store, tmp_path: Path
) -> None:
    (sftp_server.root / "bad.csv").write_text("not,a,statement\n")
    (sftp_server.root / "huge.csv").write_bytes(b"x" * 5000)
    source = make_source(sqlite_store, sftp_server, tmp_path, max_file_size=4096)
    failed = source.poll_once()
    assert sorted(s.name for s in failed if s.error) == ["bad.csv", "huge.csv"]
    assert source.poll_once() == []
    fresh = make_source(sqlite_store, sftp_server, tmp_path, max_file_size=4096)
    assert fresh.poll_once() == []  # a restart does not retry them either
    with sqlite_store.read() as conn:
        views = {v.name: v for v in remote_ledger.list_files(conn, status="failed")}
    assert "over max_file_size" in (views["huge.csv"].reason or "")
    assert "no known format" in (views["bad.csv"].reason or "")


def test_crash_after_ingest_before_bookkeeping_duplicates_nothing(
    ftp_server: FileServer,
    sqlite_store: Store,
    samples_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (ftp_server.root / "s.csv").write_bytes((samples_dir / STATEMENT).read_bytes())
    source = make_source(sqlite_store, ftp_server, tmp_path)
    real_finish = remote_ledger.finish

    def crash(*args: Any, **kwargs: Any) -> None:
        raise SystemExit("killed")

    monkeypatch.setattr(remote_ledger, "finish", crash)
    with pytest.raises(SystemExit):
        source.poll_once()
    monkeypatch.setattr(remote_ledger, "finish", real_finish)
    restarted = make_source(sqlite_store, ftp_server, tmp_path)
    (summary,) = restarted.poll_once()
    assert summary.skipped
    assert sqlite_store.status()["transactions"] == 12
    assert sqlite_store.status()["deliveries"]["erp"] == {"pending": 12}


def test_odd_names_are_handled_and_never_escape_the_work_dir(
    sftp_server: FileServer, sqlite_store: Store, samples_dir: Path, tmp_path: Path
) -> None:
    content = (samples_dir / STATEMENT).read_bytes()
    root = bytes(sftp_server.root)
    odd = root + b"/odd\xff name\x1b[31m.csv"
    with open(odd, "wb") as handle:
        handle.write(content)
    source = make_source(sqlite_store, sftp_server, tmp_path, on_success="archive", archive_dir="a")
    (summary,) = source.poll_once()
    assert summary.new == 12
    with open(root + b"/a/odd\xff name\x1b[31m.csv", "rb") as handle:  # moved byte-exact
        assert handle.read() == content
    with sqlite_store.read() as conn:
        (view,) = remote_ledger.list_files(conn)
    assert view.path is not None
    assert "\\xff" in view.path
    assert "\\x1b" in view.path
    for name in ("../../etc/passwd", "..", "a/../../b.csv", ".hidden", "C:\\x\\..\\y.csv"):
        safe = safe_local_name(name)
        assert "/" not in safe
        assert "\\" not in safe
        assert not safe.startswith(".")


def test_ftps_certificate_is_verified_unless_turned_off(
    ftps_server: FileServer,
    sqlite_store: Store,
    samples_dir: Path,
    tmp_path: Path,
) -> None:
    (ftps_server.root / "s.csv").write_bytes((samples_dir / STATEMENT).read_bytes())
    untrusted = make_source(sqlite_store, ftps_server, tmp_path, ca_file=None)
    with pytest.raises(RemoteConfigError, match="TLS certificate is not trusted"):
        untrusted.poll_once()
    with structlog.testing.capture_logs() as logs:
        unverified = make_source(
            sqlite_store, ftps_server, tmp_path, ca_file=None, verify_tls=False
        )
    assert any("verification is OFF" in entry["event"] for entry in logs)
    assert [s.new for s in unverified.poll_once()] == [12]


def test_an_ftp_server_without_mlsd_is_listed_with_nlst_size_and_mdtm(
    ftp_server: FileServer, sqlite_store: Store, samples_dir: Path, tmp_path: Path
) -> None:
    ftp_server.knobs.no_mlsd = True
    (ftp_server.root / "statement.csv").write_bytes((samples_dir / STATEMENT).read_bytes())
    source = make_source(sqlite_store, ftp_server, tmp_path)
    (summary,) = source.poll_once()
    assert (summary.new, summary.error) == (12, None)
    # SIZE and MDTM gave the same (path, size, mtime) key: not fetched a second time
    assert source.poll_once() == []
