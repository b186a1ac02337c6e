"""File-drop sinks: ``batches`` (fixed files and their bytes), ``batch_deliveries`` (which
deliveries each carries) and ``batch_schedules`` (the last scheduled cut per sink).

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 06:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pesabridge.store.types import Id, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("sink", sa.String(length=100), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("period", sa.Date(), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("file_name", sa.Text(), nullable=False),
        sa.Column("encoder", sa.String(length=32), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("closing_balance", sa.String(length=40), nullable=True),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("lease_owner", sa.String(length=100), nullable=True),
        sa.Column("lease_expires_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("uploaded_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
        sa.UniqueConstraint("sink", "file_name", name=op.f("uq_batches_sink_file_name")),
        sa.UniqueConstraint(
            "sink",
            "account",
            "period",
            "sequence",
            name=op.f("uq_batches_sink_account_period_sequence"),
        ),
    )
    op.create_index("ix_batches_upload", "batches", ["state", "next_attempt_at"], unique=False)
    op.create_table(
        "batch_deliveries",
        sa.Column("delivery_id", Id, nullable=False),
        sa.Column("batch_id", Id, nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_batch_deliveries_batch_id_batches")
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["deliveries.id"],
            name=op.f("fk_batch_deliveries_delivery_id_deliveries"),
        ),
        sa.PrimaryKeyConstraint("delivery_id", name=op.f("pk_batch_deliveries")),
    )
    op.create_index(
        op.f("ix_batch_deliveries_batch_id"), "batch_deliveries", ["batch_id"], unique=False
    )
    op.create_table(
        "batch_schedules",
        sa.Column("sink", sa.String(length=100), nullable=False),
        sa.Column("last_fire_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("sink", name=op.f("pk_batch_schedules")),
    )


def downgrade() -> None:
    op.drop_table("batch_schedules")
    op.drop_index(op.f("ix_batch_deliveries_batch_id"), table_name="batch_deliveries")
    op.drop_table("batch_deliveries")
    op.drop_index("ix_batches_upload", table_name="batches")
    op.drop_table("batches")
