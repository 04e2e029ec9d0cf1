"""reports: PDF, the expert assessment (JSON), overall severity, and the future sign-off columns

Revision ID: 0002_report_content
Revises: 0001_initial
Create Date: 2025-11-27

All columns are nullable: reports rendered before this revision keep working (no PDF, no assessment),
and `signed_at`/`signed_by` stay NULL until a clinician signs (the dashboard sign-off is a later issue).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_report_content"
down_revision = "0001_initial"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("pdf", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("assessment_json", sa.JSON(none_as_null=True), nullable=True))
        batch.add_column(sa.Column("severity", sa.String(16), nullable=True))
        batch.add_column(sa.Column("signed_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("signed_by", sa.String(128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        for column in ("signed_by", "signed_at", "severity", "assessment_json", "pdf"):
            batch.drop_column(column)
