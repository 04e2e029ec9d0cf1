"""`/patients/{patient_id}` (the patient's story) and `/api/patients/{patient_id}` (its data).

What the cloud holds of a patient: their escalated episodes and reports, and what their edge summarises each
minute (shared.messages.edge): their devices with presence and last contact, and the heart rate from the
1 Hz vitals as per-minute mean, lowest and highest. Baseline and care plan come from the latest report.
Clinical episodes and drills are kept apart, and a drill never joins the trend (edges leave drills out).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from cloud_expert.accounts import Viewer, audit
from cloud_expert.db import Episode, Report
from cloud_expert.db.snapshot import one_snapshot
from cloud_expert.scope import scoped
from cloud_expert.telemetry import TrendPoint, devices_of, hr_trend
from cloud_expert.web.charts import hr_trend_svg
from cloud_expert.web.deps import SessionDep, TemplatesDep
from cloud_expert.web.routes.common import ID_PATTERN
from cloud_expert.web.security import Reader, client_of
from shared.messages import utcnow

router = APIRouter(tags=["patients"])

PatientId = Annotated[str, Path(pattern=ID_PATTERN, description="Pseudonymous patient id")]
TrendRange = Literal["6h", "24h", "7d"]
#: range → (span, bucket): a few hundred points whichever is chosen
RANGES: dict[str, tuple[timedelta, timedelta]] = {
    "6h": (timedelta(hours=6), timedelta(minutes=1)),
    "24h": (timedelta(hours=24), timedelta(minutes=5)),
    "7d": (timedelta(days=7), timedelta(hours=1)),
}
RangeQuery = Annotated[TrendRange, Query(alias="range", description="Trend span: 6h (per minute), 24h (per 5 "
                                                                    "min) or 7d (per hour)")]


class TimelineEntry(BaseModel):
    alert_id: str
    received_at: datetime
    kind: str
    level: str
    drill: bool
    device_id: str
    hr_bpm: float | None = Field(description="The watch's rate at the alert")
    phone_hr_bpm: float | None = Field(description="The phone's reading of the strip")
    rhythm: str | None
    queue_status: str
    report_id: str | None
    report_status: str | None


class DevicePublic(BaseModel):
    device_id: str
    role: str | None
    status: str = Field(description="online | offline (the device's own presence) | unknown")
    last_seen: datetime | None = Field(description="Last message its edge had from it")
    reported_at: datetime | None = Field(description="When its edge last told the cloud (None: only seen in "
                                                     "episodes)")
    last_alert: datetime | None


class TrendPointPublic(BaseModel):
    start: datetime
    n: int = Field(description="Vitals readings in the interval (every device of the patient)")
    hr_mean: float
    hr_min: float
    hr_max: float


class PatientPublic(BaseModel):
    patient_id: str
    sites: list[str]
    devices: list[DevicePublic]
    clinical: list[TimelineEntry] = Field(description="Oldest first")
    drills: list[TimelineEntry]
    baseline_hr_bpm: float | None
    care_plan: list[str]
    trend_range: TrendRange
    trend_bucket_s: float
    trend: list[TrendPointPublic] = Field(description="Heart rate from the vitals, oldest first (clinical only)")


def patient_story(session: SessionDep, viewer: Viewer, patient_id: str, trend_range: TrendRange = "24h",
                  now: datetime | None = None) -> PatientPublic:
    with one_snapshot(session):  # the devices and the trend one edge summary brought, seen together or not at all
        return _read_story(session, viewer, patient_id, trend_range, now)


def _read_story(session: SessionDep, viewer: Viewer, patient_id: str, trend_range: TrendRange,
                now: datetime | None) -> PatientPublic:
    rows = session.execute(scoped(select(Episode, Report).outerjoin(Report, Report.episode_id == Episode.id)
                                  .where(Episode.patient_id == patient_id).order_by(Episode.received_at),
                                  viewer.scope)).all()
    # devices and trend are clinical: an operator (drills only) never sees them
    known = [d for d in devices_of(session, patient_id) if viewer.scope.allows(d.site, patient_id)]
    if not rows and not known:
        raise HTTPException(status_code=404, detail=f"patient {patient_id!r} not found")
    entries, last_alert = [], {}
    plan: list[str] = []
    baseline = None
    for episode, report in rows:
        alert: dict[str, Any] = (episode.alert_json or {}).get("payload", {})
        analysis: dict[str, Any] = (episode.analysis_json or {}).get("payload", {})
        entries.append(TimelineEntry(
            alert_id=episode.id, received_at=episode.received_at, kind=episode.kind, level=episode.level,
            drill=episode.drill, device_id=episode.device_id, hr_bpm=alert.get("hr_bpm"),
            phone_hr_bpm=analysis.get("hr_bpm"), rhythm=analysis.get("rhythm"), queue_status=episode.queue_status,
            report_id=report.id if report else None, report_status=report.review_status if report else None))
        last_alert[episode.device_id] = episode.received_at
        if report is not None and not episode.drill and report.assessment_json:
            plan = list(report.assessment_json.get("care_plan") or [])
            baseline = (report.assessment_json.get("history") or {}).get("baseline_hr_bpm")
    devices = {d.device_id: DevicePublic(device_id=d.device_id, role=d.role, status=d.status, last_seen=d.last_seen,
                                         reported_at=d.reported_at, last_alert=last_alert.get(d.device_id))
               for d in known if not viewer.drills_only}
    for device_id, at in last_alert.items():
        devices.setdefault(device_id, DevicePublic(device_id=device_id, role=None, status="unknown", last_seen=None,
                                                   reported_at=None, last_alert=at))
    span, bucket = RANGES[trend_range]
    until = (now or utcnow()).replace(second=0, microsecond=0) + timedelta(minutes=1)
    trend = [] if viewer.drills_only else [
        TrendPointPublic(start=p.start, n=p.n, hr_mean=p.hr_mean, hr_min=p.hr_min, hr_max=p.hr_max)
        for p in hr_trend(session, patient_id, since=until - span, until=until, bucket=bucket)]
    return PatientPublic(patient_id=patient_id, sites=sorted({e.site for e, _ in rows} | {d.site for d in known}),
                         devices=sorted(devices.values(), key=lambda d: d.device_id),
                         clinical=[e for e in entries if not e.drill], drills=[e for e in entries if e.drill],
                         baseline_hr_bpm=baseline, care_plan=plan, trend_range=trend_range,
                         trend_bucket_s=bucket.total_seconds(), trend=trend)


@router.get("/api/patients/{patient_id}", response_model=PatientPublic,
            responses={404: {"description": "No such patient for this user"}})
def patient_json(request: Request, session: SessionDep, viewer: Reader, patient_id: PatientId,
                 trend_range: RangeQuery = "24h") -> PatientPublic:
    """The patient's episodes (clinical and drills apart), devices and their presence, heart-rate trend, baseline
    and care plan (recorded in the audit log)."""
    story = patient_story(session, viewer, patient_id, trend_range)
    audit(session, viewer.username, "viewed_patient", patient_id, "json", client=client_of(request))
    session.commit()
    return story


@router.get("/patients/{patient_id}", response_class=HTMLResponse, include_in_schema=False)
def patient_page(request: Request, session: SessionDep, templates: TemplatesDep, viewer: Reader,
                 patient_id: PatientId, trend_range: RangeQuery = "24h") -> HTMLResponse:
    story = patient_story(session, viewer, patient_id, trend_range)
    audit(session, viewer.username, "viewed_patient", patient_id, "html", client=client_of(request))
    session.commit()
    local = templates.env.filters["local"]
    span, bucket = RANGES[trend_range]
    until = (story.trend[-1].start + bucket) if story.trend else utcnow()
    since = max(until - span, story.trend[0].start) if story.trend else until - span
    chart = hr_trend_svg(
        [TrendPoint(p.start, p.n, p.hr_mean, p.hr_min, p.hr_max) for p in story.trend], since=since, until=until,
        bucket=bucket, alerts=[e.received_at for e in story.clinical],
        label=lambda at: local(at, "%d %b %H:%M"))
    return templates.TemplateResponse(request, "patient.html", {"p": story, "viewer": viewer, "trend": chart,
                                                                "ranges": list(RANGES)})
