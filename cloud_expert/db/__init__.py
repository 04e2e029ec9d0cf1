"""The cloud DB: typed models, engine/session factory, and the Alembic upgrade every process runs."""

from cloud_expert.db.engine import make_engine, make_session_factory
from cloud_expert.db.migrate import upgrade_to_head
from cloud_expert.db.models import (
    JOB_STATUSES,
    AuditEntry,
    Base,
    DeviceRow,
    DrillRun,
    Episode,
    Erasure,
    HrMinuteRow,
    JobStatus,
    Label,
    Report,
    ReportJob,
    ReportReview,
    StripSegment,
    User,
    WebSession,
)

__all__ = [
    "JOB_STATUSES", "AuditEntry", "Base", "DeviceRow", "DrillRun", "Episode", "Erasure", "HrMinuteRow", "JobStatus",
    "Label", "Report", "ReportJob", "ReportReview", "StripSegment", "User", "WebSession", "make_engine",
    "make_session_factory", "upgrade_to_head",
]
