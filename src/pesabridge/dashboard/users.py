"""Local dashboard users: argon2 password hashes, roles, lockout after repeated failures."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from functools import cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, select, update

from ..store import Store, utcnow
from ..store.schema import dashboard_sessions, users

MIN_PASSWORD = 10
MAX_FAILURES = 5
"""Consecutive wrong passwords before the account is locked."""
LOCKOUT = timedelta(minutes=15)
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,100}$")

# argon2-cffi's defaults are RFC 9106's low-memory profile (argon2id, 64 MiB, t=3).
_hasher = PasswordHasher()


@cache
def _dummy_hash() -> str:
    """Verified when the user does not exist, so a wrong name costs as long as a wrong
    password. Made on first use: hashing costs ~0.1 s, which every CLI command paid at import."""
    return _hasher.hash("not a password anyone has")


class Role(StrEnum):
    """What a user may do; each role may do everything the one before it may."""

    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMIN = "admin"


_RANK = {Role.VIEWER: 0, Role.OPERATOR: 1, Role.ADMIN: 2}


class UserError(ValueError):
    """A user command that cannot be carried out (unknown user, weak password ...)."""


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    role: Role
    disabled: bool
    failed_logins: int
    locked_until: datetime | None
    created_at: datetime
    last_login_at: datetime | None

    def may(self, role: Role) -> bool:
        """Whether this user has ``role`` or a stronger one."""
        return _RANK[self.role] >= _RANK[role]

    @property
    def sees_phone_numbers(self) -> bool:
        """Only admins see numbers unmasked."""
        return self.role is Role.ADMIN

    def locked(self, now: datetime) -> bool:
        return self.locked_until is not None and self.locked_until > now


def user_from_row(row: Any) -> User:
    """A :class:`User` from a ``users`` row mapping."""
    return User(
        id=row["id"],
        username=row["username"],
        role=Role(row["role"]),
        disabled=bool(row["disabled"]),
        failed_logins=row["failed_logins"],
        locked_until=row["locked_until"],
        created_at=row["created_at"],
        last_login_at=row["last_login_at"],
    )


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise UserError(f"password too short: at least {MIN_PASSWORD} characters")


def _role(value: str) -> Role:
    try:
        return Role(value)
    except ValueError:
        raise UserError(f"unknown role {value!r}: one of viewer, operator, admin") from None


def add_user(store: Store, username: str, password: str, role: str) -> User:
    """Create a user; the name must be new."""
    if not _USERNAME.match(username):
        raise UserError("user name: 1-100 letters, digits, '_', '.', '@' or '-'")
    checked_role = _role(role)
    _check_password(password)
    now = utcnow()
    with store.write() as conn:
        if conn.execute(select(users.c.id).where(users.c.username == username)).first():
            raise UserError(f"user {username!r} already exists")
        conn.execute(
            users.insert().values(
                username=username,
                password_hash=_hasher.hash(password),
                role=checked_role.value,
                disabled=False,
                failed_logins=0,
                created_at=now,
                updated_at=now,
            )
        )
        return _get(conn, username)


def _get(conn: Connection, username: str) -> User:
    row = conn.execute(select(users).where(users.c.username == username)).mappings().first()
    if row is None:
        raise UserError(f"no user {username!r}")
    return user_from_row(row)


def get_user(store: Store, username: str) -> User:
    """The user called ``username``; :class:`UserError` when there is none."""
    with store.read() as conn:
        return _get(conn, username)


def list_users(store: Store) -> list[User]:
    """Every user, by name."""
    with store.read() as conn:
        rows = conn.execute(select(users).order_by(users.c.username)).mappings()
        return [user_from_row(r) for r in rows]


def set_password(store: Store, username: str, password: str) -> None:
    """Change a password; the user's sessions end and any lockout is lifted."""
    _check_password(password)
    with store.write() as conn:
        user = _get(conn, username)
        conn.execute(
            update(users)
            .where(users.c.id == user.id)
            .values(
                password_hash=_hasher.hash(password),
                failed_logins=0,
                locked_until=None,
                updated_at=utcnow(),
            )
        )
        conn.execute(dashboard_sessions.delete().where(dashboard_sessions.c.user_id == user.id))


def set_disabled(store: Store, username: str, disabled: bool) -> None:
    """Disable (ending every session at once) or re-enable a user."""
    with store.write() as conn:
        user = _get(conn, username)
        conn.execute(
            update(users)
            .where(users.c.id == user.id)
            .values(disabled=disabled, failed_logins=0, locked_until=None, updated_at=utcnow())
        )
        if disabled:
            conn.execute(dashboard_sessions.delete().where(dashboard_sessions.c.user_id == user.id))


@dataclass(frozen=True, slots=True)
class LoginResult:
    user: User | None
    """The user, when the password was right and the account usable."""
    reason: str = ""
    """Why not (for the audit log; the login page says the same thing for every case
    except a lockout, so names cannot be probed)."""


def authenticate(store: Store, username: str, password: str) -> LoginResult:
    """Check a password, counting failures and locking the account after too many."""
    now = utcnow()
    with store.read() as conn:
        row = conn.execute(select(users).where(users.c.username == username)).mappings().first()
    if row is None:
        _verify(_dummy_hash(), password)
        return LoginResult(None, "unknown user")
    user = user_from_row(row)
    if user.disabled:
        _verify(_dummy_hash(), password)
        return LoginResult(None, "disabled")
    if user.locked(now):
        return LoginResult(None, "locked")
    if not _verify(row["password_hash"], password):
        failures = user.failed_logins + 1
        values: dict[str, Any] = {"failed_logins": failures}
        if failures >= MAX_FAILURES:
            values = {"failed_logins": 0, "locked_until": now + LOCKOUT}
        with store.write() as conn:
            conn.execute(update(users).where(users.c.id == user.id).values(**values))
        return LoginResult(None, "locked" if failures >= MAX_FAILURES else "wrong password")
    values = {"failed_logins": 0, "locked_until": None, "last_login_at": now}
    if _hasher.check_needs_rehash(row["password_hash"]):
        values["password_hash"] = _hasher.hash(password)
    with store.write() as conn:
        conn.execute(update(users).where(users.c.id == user.id).values(**values))
    return LoginResult(user)


def _verify(hashed: str, password: str) -> bool:
    try:
        return _hasher.verify(hashed, password)
    except (VerificationError, InvalidHashError):
        return False
