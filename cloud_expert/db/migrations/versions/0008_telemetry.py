"""telemetry from the edge (full disclosure strips, per-minute heart rate, devices) and patient assignment

Revision ID: 0008_telemetry
Revises: 0007_drill_runs
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_telemetry"
down_revision = "0007_drill_runs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "strip_segments",
        sa.Column("alert_id", sa.String(64), primary_key=True),
        sa.Column("t0_s", sa.Float(), primary_key=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False, index=True),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("drill", sa.Boolean(), nullable=False),
        sa.Column("fs", sa.Float(), nullable=False),
        sa.Column("gain", sa.Float(), nullable=False),
        sa.Column("lead", sa.String(16), nullable=False),
        sa.Column("samples", sa.LargeBinary(), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, index=True),
    )
    op.create_table(
        "hr_minutes",
        sa.Column("device_id", sa.String(64), primary_key=True),
        sa.Column("minute", sa.DateTime(timezone=True), primary_key=True),
        sa.Column("message_id", sa.String(64), primary_key=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False, index=True),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("hr_mean", sa.Float(), nullable=False),
        sa.Column("hr_min", sa.Float(), nullable=False),
        sa.Column("hr_max", sa.Float(), nullable=False),
        sa.Column("signal_ok_share", sa.Float(), nullable=False),
    )
    op.create_index("ix_hr_minutes_patient_minute", "hr_minutes", ["patient_id", "minute"])
    op.create_table(
        "devices",
        sa.Column("device_id", sa.String(64), primary_key=True),
        sa.Column("patient_id", sa.String(64), nullable=False, index=True),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("patients", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("patients")
    op.drop_table("devices")
    op.drop_index("ix_hr_minutes_patient_minute", table_name="hr_minutes")
    op.drop_table("hr_minutes")
    op.drop_table("strip_segments")
