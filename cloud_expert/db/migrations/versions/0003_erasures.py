"""erasures: the audit trail of `cardiomesh patient erase` (who erased which pseudonymous patient, when, why)

Revision ID: 0003_erasures
Revises: 0002_report_content
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_erasures"
down_revision = "0002_report_content"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "erasures",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False, index=True),
        sa.Column("erased_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("erased_by", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("episodes", sa.Integer(), nullable=False),
        sa.Column("reports", sa.Integer(), nullable=False),
        sa.Column("jobs", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("erasures")
