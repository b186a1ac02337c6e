"""STAN counters: durable ISO 8583 trace numbers, unique per sink per day.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "stan_counters",
        sa.Column("sink", sa.String(length=100), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("last", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("sink", "day", name=op.f("pk_stan_counters")),
    )


def downgrade() -> None:
    op.drop_table("stan_counters")
