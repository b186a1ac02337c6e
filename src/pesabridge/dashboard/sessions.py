"""Server-side sessions: a random token in an HttpOnly cookie, its sha256 in the ledger."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update

from ..store import Store, utcnow
from ..store.schema import dashboard_sessions, users
from .users import User, user_from_row

COOKIE = "pb_session"
LIFETIME = timedelta(hours=12)
"""A session ends this long after login, however active."""
IDLE = timedelta(minutes=30)
"""... or after this long without a request."""
_TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Session:
    key: str
    """The sha256 of the cookie's token (what the table holds)."""
    user: User
    csrf: str
    """The session's CSRF token: every form posts it back."""


def _key(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_session(store: Store, user: User) -> tuple[str, Session]:
    """A new session for ``user``; returns the cookie's token and the session."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = utcnow()
    key = _key(token)
    with store.write() as conn:
        # Expired sessions go whenever someone logs in: no sweeper process needed.
        conn.execute(delete(dashboard_sessions).where(dashboard_sessions.c.expires_at <= now))
        conn.execute(
            dashboard_sessions.insert().values(
                id=key,
                user_id=user.id,
                csrf=csrf,
                created_at=now,
                expires_at=now + LIFETIME,
                last_seen_at=now,
            )
        )
    return token, Session(key, user, csrf)


def load_session(store: Store, token: str | None) -> Session | None:
    """The live session behind a cookie token; None when unknown, expired, idle too long,
    or its user is disabled."""
    if not token or len(token) > 100:
        return None
    key = _key(token)
    now = utcnow()
    s = dashboard_sessions.c
    with store.read() as conn:
        row = (
            conn.execute(
                select(users, s.csrf, s.expires_at, s.last_seen_at)
                .join(dashboard_sessions, s.user_id == users.c.id)
                .where(s.id == key)
            )
            .mappings()
            .first()
        )
    if row is None:
        return None
    if row["expires_at"] <= now or row["last_seen_at"] + IDLE <= now or row["disabled"]:
        end_session(store, token)
        return None
    if now - row["last_seen_at"] >= _TOUCH_EVERY:
        # Written at most once a minute per session: reading pages stays read-only.
        with store.write() as conn:
            conn.execute(update(dashboard_sessions).where(s.id == key).values(last_seen_at=now))
    return Session(key, user_from_row(row), row["csrf"])


def end_session(store: Store, token: str) -> None:
    """Log out: the token stops working at once."""
    with store.write() as conn:
        conn.execute(delete(dashboard_sessions).where(dashboard_sessions.c.id == _key(token)))
