"""Delivery operations: paused sinks, attempt details, the back office's document id.

- ``sink_state``: one row per sink an operator paused (or resumed); a paused sink's
  deliveries are not claimed.
- ``attempts.unknown_outcome``: the request may have reached the back office but no
  answer came (a read timeout, a dropped connection after sending); the retry carries
  the same idempotency key.
- ``attempts.request_summary``: what was sent (method, URL, body size and digest; never
  secrets), for ``pesabridge deliveries show``.
- ``deliveries.document_id``: the back office's own id for the posted document, taken
  from its response by the sink's response mapping.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28 06:10:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from pesabridge.store.types import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sink_state",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("paused", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_sink_state")),
    )
    with op.batch_alter_table("attempts") as batch:
        batch.add_column(
            sa.Column("unknown_outcome", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch.add_column(sa.Column("request_summary", sa.Text(), nullable=True))
    with op.batch_alter_table("deliveries") as batch:
        batch.add_column(sa.Column("document_id", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_column("document_id")
    with op.batch_alter_table("attempts") as batch:
        batch.drop_column("request_summary")
        batch.drop_column("unknown_outcome")
    op.drop_table("sink_state")
