"""Callbacks: ``failed_attempts``, payments a provider reports as not having happened.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 09:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pesabridge.store.types import Id, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "failed_attempts",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("source", sa.String(length=200), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=True),
        sa.Column("request_id", sa.String(length=200), nullable=True),
        sa.Column("code", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("raw", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_failed_attempts")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_failed_attempts_fingerprint")),
    )
    op.create_index(
        op.f("ix_failed_attempts_request_id"), "failed_attempts", ["request_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_failed_attempts_request_id"), table_name="failed_attempts")
    op.drop_table("failed_attempts")
