"""triage queue: an episode's state in the clinicians' queue (acknowledged, assigned, snoozed, resolved)

Revision ID: 0006_triage_queue
Revises: 0005_signoff
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_triage_queue"
down_revision = "0005_signoff"
branch_labels = None
depends_on = None

COLUMNS = (
    sa.Column("queue_status", sa.String(16), nullable=False, server_default="open"),
    sa.Column("assigned_to", sa.String(64), nullable=True),
    sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("acknowledged_by", sa.String(64), nullable=True),
    sa.Column("snoozed_until", sa.DateTime(timezone=True), nullable=True),
    sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
    sa.Column("resolved_by", sa.String(64), nullable=True),
    sa.Column("outcome", sa.Text(), nullable=True),
)


def upgrade() -> None:
    with op.batch_alter_table("episodes") as batch:
        for column in COLUMNS:
            batch.add_column(column.copy())
    op.create_index("episodes_queue", "episodes", ["queue_status", "received_at"])


def downgrade() -> None:
    op.drop_index("episodes_queue", "episodes")
    with op.batch_alter_table("episodes") as batch:
        for column in reversed(COLUMNS):
            batch.drop_column(column.name)
