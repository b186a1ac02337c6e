"""Intentionally empty: reserved for outbox throughput changes that turned out to need no
schema change. Kept so that databases already at 0009 or 0010 stay on the chain.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
