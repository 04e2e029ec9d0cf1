"""initial schema: episodes, report_jobs, reports

Revision ID: 0001_initial
Revises:
Create Date: 2025-11-25
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_initial"
down_revision = None
branch_labels = None
depends_on = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "episodes",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("trace_id", sa.String(64), nullable=False),
        sa.Column("site", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("drill", sa.Boolean(), nullable=False),
        sa.Column("received_at", _TS, nullable=False),
        sa.Column("alert_json", sa.JSON(), nullable=False),
        sa.Column("analysis_json", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("triage_json", sa.JSON(), nullable=False),
        sa.Column("hops_json", sa.JSON(), nullable=False),
        sa.Column("escalation_message_id", sa.String(64), nullable=False),
        sa.UniqueConstraint("escalation_message_id", name="uq_episodes_escalation_message_id"),
    )
    op.create_index("ix_episodes_trace_id", "episodes", ["trace_id"])
    op.create_index("ix_episodes_site", "episodes", ["site"])
    op.create_index("ix_episodes_patient_id", "episodes", ["patient_id"])
    op.create_index("ix_episodes_received_at", "episodes", ["received_at"])

    op.create_table(
        "report_jobs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("episode_id", sa.String(64), sa.ForeignKey("episodes.id", ondelete="CASCADE"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("enqueued_at", _TS, nullable=False),
        sa.Column("started_at", _TS, nullable=True),
        sa.Column("finished_at", _TS, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("announced", sa.Boolean(), nullable=False),
        sa.UniqueConstraint("episode_id", name="uq_report_jobs_episode_id"),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')", name="ck_report_jobs_status"),
    )
    op.create_index("ix_report_jobs_status", "report_jobs", ["status"])

    op.create_table(
        "reports",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("episode_id", sa.String(64), sa.ForeignKey("episodes.id", ondelete="CASCADE"), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("drill", sa.Boolean(), nullable=False),
        sa.Column("level", sa.String(16), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("rendered_ms", sa.Float(), nullable=False),
        sa.UniqueConstraint("episode_id", name="uq_reports_episode_id"),
    )
    op.create_index("ix_reports_created_at", "reports", ["created_at"])


def downgrade() -> None:
    op.drop_table("reports")
    op.drop_table("report_jobs")
    op.drop_table("episodes")
