"""sign-off: a report's review status, its review history, and the clinicians' verdicts as training labels

Revision ID: 0005_signoff
Revises: 0004_accounts
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_signoff"
down_revision = "0004_accounts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("review_status", sa.String(16), nullable=False, server_default="preliminary"))
        batch.add_column(sa.Column("review_reason", sa.Text(), nullable=True))
    op.create_table(
        "report_reviews",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("report_id", sa.String(64), sa.ForeignKey("reports.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("username", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("verdict", sa.String(16), nullable=True),
        sa.Column("rhythm", sa.String(32), nullable=True),
    )
    op.create_table(
        "labels",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("report_id", sa.String(64), sa.ForeignKey("reports.id", ondelete="CASCADE"), nullable=False,
                  index=True),
        sa.Column("alert_id", sa.String(64), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False, index=True),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("verdict", sa.String(16), nullable=False),
        sa.Column("rhythm", sa.String(32), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True, index=True),
    )


def downgrade() -> None:
    op.drop_table("labels")
    op.drop_table("report_reviews")
    with op.batch_alter_table("reports") as batch:
        batch.drop_column("review_reason")
        batch.drop_column("review_status")
