"""Fixtures for the dashboard: a seeded ledger served over real HTTP."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pesabridge.server import build_app
from pesabridge.store import Store

from . import seed
from .serving import serve


@pytest.fixture
def seeded(store: Store) -> Store:
    """The ``store`` fixture (SQLite and PostgreSQL) with users and three payments."""
    seed.users(store)
    seed.payments(store)
    return store


@pytest.fixture
def base(seeded: Store) -> Iterator[str]:
    """The server's base URL (the dashboard is under ``/ui``)."""
    with serve(build_app(seeded, [])) as url:
        yield url
