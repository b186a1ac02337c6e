"""Reconciliation runs, day summaries, exceptions and their resolutions.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pesabridge.store.types import Id, UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "recon_runs",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("period_end", sa.Date(), nullable=False),
        sa.Column("trigger", sa.String(length=16), nullable=False),
        sa.Column("statement", sa.Text(), nullable=True),
        sa.Column("backoffice", sa.Text(), nullable=True),
        sa.Column("open_exceptions", sa.Integer(), nullable=False),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_runs")),
    )
    op.create_table(
        "recon_days",
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("outcome", sa.String(length=32), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("run_id", Id, nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["recon_runs.id"], name=op.f("fk_recon_days_run_id_recon_runs")
        ),
        sa.PrimaryKeyConstraint(
            "provider", "account", "day", "outcome", name=op.f("pk_recon_days")
        ),
    )
    op.create_table(
        "recon_exceptions",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("transaction_id", Id, nullable=True),
        sa.Column("receipt", sa.String(length=64), nullable=True),
        sa.Column("sink", sa.String(length=100), nullable=True),
        sa.Column("file_id", Id, nullable=True),
        sa.Column("line", sa.Integer(), nullable=True),
        sa.Column("amount_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("first_run_id", Id, nullable=False),
        sa.Column("last_run_id", Id, nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(length=100), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["file_id"], ["files.id"], name=op.f("fk_recon_exceptions_file_id_files")
        ),
        sa.ForeignKeyConstraint(
            ["first_run_id"],
            ["recon_runs.id"],
            name=op.f("fk_recon_exceptions_first_run_id_recon_runs"),
        ),
        sa.ForeignKeyConstraint(
            ["last_run_id"],
            ["recon_runs.id"],
            name=op.f("fk_recon_exceptions_last_run_id_recon_runs"),
        ),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["transactions.id"],
            name=op.f("fk_recon_exceptions_transaction_id_transactions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_exceptions")),
        sa.UniqueConstraint("key", name=op.f("uq_recon_exceptions_key")),
    )
    op.create_index(
        "ix_recon_exceptions_scope", "recon_exceptions", ["account", "day", "status"], unique=False
    )
    op.create_index(
        op.f("ix_recon_exceptions_transaction_id"),
        "recon_exceptions",
        ["transaction_id"],
        unique=False,
    )
    op.create_table(
        "recon_resolutions",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("exception_id", Id, nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("by_user", sa.String(length=100), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["exception_id"],
            ["recon_exceptions.id"],
            name=op.f("fk_recon_resolutions_exception_id_recon_exceptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recon_resolutions")),
    )
    op.create_index(
        op.f("ix_recon_resolutions_exception_id"),
        "recon_resolutions",
        ["exception_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_recon_resolutions_exception_id"), table_name="recon_resolutions")
    op.drop_table("recon_resolutions")
    op.drop_index(op.f("ix_recon_exceptions_transaction_id"), table_name="recon_exceptions")
    op.drop_index("ix_recon_exceptions_scope", table_name="recon_exceptions")
    op.drop_table("recon_exceptions")
    op.drop_table("recon_days")
    op.drop_table("recon_runs")
