"""``pesabridge users``: add, passwd, disable, enable, list, and what they refuse."""

from __future__ import annotations

from typer.testing import CliRunner

from pesabridge.cli import app
from pesabridge.dashboard.users import authenticate, get_user
from pesabridge.store import Store


def _users(db: str, *args: str, password: str | None = None) -> tuple[int, str]:
    env = {"PESABRIDGE_PASSWORD": password} if password else {}
    result = CliRunner().invoke(app, ["users", *args, "--db", db], env=env)
    return result.exit_code, result.output


def test_users_lifecycle(sqlite_url: str) -> None:
    assert (
        _users(sqlite_url, "add", "amina", "--role", "operator", password="first-password")[0] == 0
    )
    code, out = _users(sqlite_url, "add", "amina", password="first-password")
    assert code == 2
    assert "already exists" in out
    code, out = _users(sqlite_url, "add", "short", password="tiny")
    assert code == 2
    assert "at least 10 characters" in out
    code, out = _users(sqlite_url, "add", "bad name!", password="long-enough-1")
    assert code == 2
    code, out = _users(sqlite_url, "add", "x", "--role", "root", password="long-enough-1")
    assert code == 2
    assert _users(sqlite_url, "passwd", "amina", password="second-password")[0] == 0
    store = Store.open(sqlite_url)
    try:
        assert authenticate(store, "amina", "first-password").user is None
        assert authenticate(store, "amina", "second-password").user is not None
        assert _users(sqlite_url, "disable", "amina")[0] == 0
        assert authenticate(store, "amina", "second-password").reason == "disabled"
        code, out = _users(sqlite_url, "list")
        assert "amina" in out
        assert "operator" in out
        assert "disabled" in out
        assert _users(sqlite_url, "enable", "amina")[0] == 0
        assert not get_user(store, "amina").disabled
        assert _users(sqlite_url, "passwd", "nobody", password="whatever-123")[0] == 2
    finally:
        store.close()
