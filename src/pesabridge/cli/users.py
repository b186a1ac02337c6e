"""``pesabridge users add|passwd|disable|enable|list``: the dashboard's local users."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from rich.table import Table

from ..dashboard.users import Role, UserError, add_user, list_users, set_disabled, set_password
from ..store import utcnow
from .common import ConfigOption, DbOption, console, errors, open_store

users_app = typer.Typer(help="Dashboard users (local accounts, argon2-hashed passwords).")

PASSWORD_ENV = "PESABRIDGE_PASSWORD"  # noqa: S105 (the variable's name, not a password)
Username = Annotated[str, typer.Argument(help="The user's login name.", show_default=False)]


def _password(confirm: bool = True) -> str:
    """From $PESABRIDGE_PASSWORD (scripts), a pipe (one line), or a prompt (typed twice);
    never from the command line, where it would stay in shell history and ps."""
    if os.environ.get(PASSWORD_ENV):
        return os.environ[PASSWORD_ENV]
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\r\n")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=confirm))


def _fail(exc: UserError) -> typer.Exit:
    errors.print(f"[bold red]{exc}[/]", highlight=False)
    return typer.Exit(2)


@users_app.command("add")
def add(
    username: Username,
    role: Annotated[
        Role,
        typer.Option(
            "--role",
            help="viewer (read, numbers masked), operator "
            "(replay, resolve), admin (users, settings, unmasked numbers).",
        ),
    ] = Role.VIEWER,
    config_path: ConfigOption = None,
    db: DbOption = None,
) -> None:
    """Create a user. The password is prompted for (or read from a pipe or $PESABRIDGE_PASSWORD)."""
    store, _ = open_store(db, config_path)
    try:
        user = add_user(store, username, _password(), role.value)
    except UserError as exc:
        raise _fail(exc) from None
    finally:
        store.close()
    console.print(f"user {user.username} added ({user.role.value})")


@users_app.command("passwd")
def passwd(username: Username, config_path: ConfigOption = None, db: DbOption = None) -> None:
    """Set a new password; the user's sessions end and a lockout is lifted."""
    store, _ = open_store(db, config_path)
    try:
        set_password(store, username, _password())
    except UserError as exc:
        raise _fail(exc) from None
    finally:
        store.close()
    console.print(f"password of {username} changed")


def _set_disabled(username: str, disabled: bool, config_path: object, db: str | None) -> None:
    store, _ = open_store(db, config_path)  # type: ignore[arg-type]
    try:
        set_disabled(store, username, disabled)
    except UserError as exc:
        raise _fail(exc) from None
    finally:
        store.close()
    console.print(f"user {username} {'disabled' if disabled else 'enabled'}")


@users_app.command("disable")
def disable(username: Username, config_path: ConfigOption = None, db: DbOption = None) -> None:
    """Disable a user: their sessions end at once and they cannot log in."""
    _set_disabled(username, True, config_path, db)


@users_app.command("enable")
def enable(username: Username, config_path: ConfigOption = None, db: DbOption = None) -> None:
    """Enable a disabled user again (also lifts a lockout)."""
    _set_disabled(username, False, config_path, db)


@users_app.command("list")
def list_(config_path: ConfigOption = None, db: DbOption = None) -> None:
    """Every user with role, state and last login."""
    store, _ = open_store(db, config_path)
    try:
        found = list_users(store)
    finally:
        store.close()
    table = Table()
    for column in ("user", "role", "state", "last login (UTC)"):
        table.add_column(column)
    for u in found:
        state = "disabled" if u.disabled else ("locked" if u.locked(utcnow()) else "active")
        last = f"{u.last_login_at:%Y-%m-%d %H:%M:%S}" if u.last_login_at else ""
        table.add_row(u.username, u.role.value, state, last)
    console.print(table)
