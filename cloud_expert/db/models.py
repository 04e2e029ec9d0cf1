"""SQLAlchemy 2.0 models of the cloud: an episode per escalated alert, its report job and its report.

The report job row is the source of truth for the report pipeline; Celery only carries the work.
Timestamps are stored in UTC and always come back timezone-aware, on SQLite as on PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar, Literal

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from cloud_expert.db.encryption import EncryptedBytes, EncryptedJSON, EncryptedText

JobStatus = Literal["queued", "running", "done", "failed"]
JOB_STATUSES: tuple[str, ...] = ("queued", "running", "done", "failed")


class UtcDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out (SQLite would otherwise hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        # none_as_null: a missing analysis is SQL NULL, not the JSON value null.
        datetime: UtcDateTime, dict[str, Any]: JSON(none_as_null=True), list[dict[str, Any]]: JSON(none_as_null=True),
    }


class Episode(Base):
    """One escalated alert (id = alert_id), with the messages that led to it kept verbatim as JSON."""

    __tablename__ = "episodes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    trace_id: Mapped[str] = mapped_column(String(64), index=True)
    site: Mapped[str] = mapped_column(String(64), index=True)
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    device_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    level: Mapped[str] = mapped_column(String(16))
    drill: Mapped[bool] = mapped_column(Boolean, default=False)
    received_at: Mapped[datetime] = mapped_column(index=True)
    alert_json: Mapped[dict[str, Any]] = mapped_column(EncryptedJSON)  # holds the ECG strip
    analysis_json: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON)
    triage_json: Mapped[dict[str, Any]]
    hops_json: Mapped[list[dict[str, Any]]]
    escalation_message_id: Mapped[str] = mapped_column(String(64), unique=True)
    # the clinicians' queue (`cloud_expert.triage_queue`): open → acknowledged → resolved
    queue_status: Mapped[str] = mapped_column(String(16), default="open", server_default="open")
    assigned_to: Mapped[str | None] = mapped_column(String(64))
    acknowledged_at: Mapped[datetime | None]
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    snoozed_until: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    resolved_by: Mapped[str | None] = mapped_column(String(64))
    outcome: Mapped[str | None] = mapped_column(Text)

    job: Mapped[ReportJob | None] = relationship(back_populates="episode", uselist=False)
    report: Mapped[Report | None] = relationship(back_populates="episode", uselist=False)


class ReportJob(Base):
    """The state of one episode's report; `attempts` counts how often it was handed to Celery."""

    __tablename__ = "report_jobs"
    __table_args__ = (CheckConstraint(f"status IN {JOB_STATUSES!r}", name="ck_report_jobs_status"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    episode_id: Mapped[str] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    enqueued_at: Mapped[datetime]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    announced: Mapped[bool] = mapped_column(Boolean, default=False)

    episode: Mapped[Episode] = relationship(back_populates="job")


class Report(Base):
    """The rendered report (HTML + PDF + the assessment as JSON); at most one per episode.

    A re-run of the job cannot add a second. `signed_at`/`signed_by` stay NULL until a clinician signs:
    until then every rendering says "preliminary" and the FHIR status is `preliminary`.
    """

    __tablename__ = "reports"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    episode_id: Mapped[str] = mapped_column(ForeignKey("episodes.id", ondelete="CASCADE"), unique=True)
    html: Mapped[str] = mapped_column(EncryptedText)
    drill: Mapped[bool] = mapped_column(Boolean, default=False)
    level: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(index=True)
    rendered_ms: Mapped[float] = mapped_column(Float)
    pdf: Mapped[bytes | None] = mapped_column(EncryptedBytes, deferred=True)
    assessment_json: Mapped[dict[str, Any] | None]
    severity: Mapped[str | None] = mapped_column(String(16))
    signed_at: Mapped[datetime | None]
    signed_by: Mapped[str | None] = mapped_column(String(128))
    #: preliminary | final | amended | rejected (`cloud_expert.signoff`)
    review_status: Mapped[str] = mapped_column(String(16), default="preliminary", server_default="preliminary")
    review_reason: Mapped[str | None] = mapped_column(Text)

    episode: Mapped[Episode] = relationship(back_populates="report")


class Erasure(Base):
    """One `cardiomesh patient erase`: what went, for whom, by whom and why. The patient id is the
    pseudonym; nothing else of the person is kept."""

    __tablename__ = "erasures"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    erased_at: Mapped[datetime]
    erased_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text)
    episodes: Mapped[int] = mapped_column(Integer)
    reports: Mapped[int] = mapped_column(Integer)
    jobs: Mapped[int] = mapped_column(Integer)


class User(Base):
    """A dashboard account. `sites` is "*" (every site) or a comma-separated list, `patients` optionally narrows
    it to assigned patients; the password is kept only as an argon2id hash."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(256))
    role: Mapped[str] = mapped_column(String(16))
    sites: Mapped[str] = mapped_column(Text)
    #: None: every patient of the user's sites; else a comma-separated list of pseudonymous patient ids
    patients: Mapped[str | None] = mapped_column(Text)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime]


class WebSession(Base):
    """A signed-in browser ("browser") or a per-user API token ("api"). Only the token's SHA-256 is kept."""

    __tablename__ = "web_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]


class AuditEntry(Base):
    """One thing a person did or saw: append-only (nothing in the app updates or deletes these rows)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(index=True)
    username: Mapped[str | None] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(32), index=True)
    target: Mapped[str | None] = mapped_column(String(200))
    detail: Mapped[str | None] = mapped_column(Text)
    client: Mapped[str | None] = mapped_column(String(64))


class ReportReview(Base):
    """One sign-off act on a report (sign, amend, reject), with the clinician's verdict: append-only."""

    __tablename__ = "report_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    report_id: Mapped[str] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    username: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(Text)
    verdict: Mapped[str | None] = mapped_column(String(16))
    rhythm: Mapped[str | None] = mapped_column(String(32))


class Label(Base):
    """A clinician's verdict on a clinical alert, waiting to be (or once) published as a training label.
    Never made for a drill."""

    __tablename__ = "labels"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    report_id: Mapped[str] = mapped_column(ForeignKey("reports.id", ondelete="CASCADE"), index=True)
    alert_id: Mapped[str] = mapped_column(String(64))
    site: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    device_id: Mapped[str] = mapped_column(String(64))
    verdict: Mapped[str] = mapped_column(String(16))
    rhythm: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime]
    published_at: Mapped[datetime | None] = mapped_column(index=True)


class DrillRun(Base):
    """A drill an operator started from the dashboard: what it reached, hop by hop (drill history)."""

    __tablename__ = "drill_runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(64), index=True)
    scenario: Mapped[str] = mapped_column(String(16))
    watch_id: Mapped[str | None] = mapped_column(String(64))
    requested_by: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(index=True)
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16))  # running | passed | failed
    trace_id: Mapped[str | None] = mapped_column(String(64))
    lines: Mapped[list[str]] = mapped_column(JSON)
    report_urls: Mapped[list[str]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)


class StripSegment(Base):
    """Part of an episode's full disclosure: ECG the watch streamed after its alert, joined by the edge.
    Keyed by (alert, start) so a re-sent disclosure adds nothing."""

    __tablename__ = "strip_segments"

    alert_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    t0_s: Mapped[float] = mapped_column(Float, primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    device_id: Mapped[str] = mapped_column(String(64))
    drill: Mapped[bool] = mapped_column(Boolean, default=False)
    fs: Mapped[float] = mapped_column(Float)
    gain: Mapped[float] = mapped_column(Float)
    lead: Mapped[str] = mapped_column(String(16))
    samples: Mapped[bytes] = mapped_column(EncryptedBytes)  # int16 little-endian, as on the bus
    complete: Mapped[bool] = mapped_column(Boolean)
    received_at: Mapped[datetime] = mapped_column(index=True)


class HrMinuteRow(Base):
    """One part of one device's heart rate over one minute (an edge summary); parts of a minute are combined
    when read (`cloud_expert.telemetry`): a late reading arrives as a second part, a re-sent one as nothing."""

    __tablename__ = "hr_minutes"
    __table_args__ = (Index("ix_hr_minutes_patient_minute", "patient_id", "minute"),)

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    minute: Mapped[datetime] = mapped_column(primary_key=True)
    message_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    site: Mapped[str] = mapped_column(String(64))
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    n: Mapped[int] = mapped_column(Integer)
    hr_mean: Mapped[float] = mapped_column(Float)
    hr_min: Mapped[float] = mapped_column(Float)
    hr_max: Mapped[float] = mapped_column(Float)
    signal_ok_share: Mapped[float] = mapped_column(Float)


class DeviceRow(Base):
    """A patient's device as its edge last told (presence is the device's own word; last seen the edge's)."""

    __tablename__ = "devices"

    device_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64), index=True)
    site: Mapped[str] = mapped_column(String(64))
    role: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    last_seen: Mapped[datetime | None]
    reported_at: Mapped[datetime]  # when the edge's summary was received
