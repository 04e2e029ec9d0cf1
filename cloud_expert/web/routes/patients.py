"""`/patients/{patient_id}` (the patient's story) and `/api/patients/{patient_id}` (its data).

What the cloud holds of a patient: their escalated episodes and reports. So the heart-rate trend is the rate
at each alert (the watch's, and the phone's reading when there is one), not the 1 Hz vitals, which stay at
the edge; devices are those seen in episodes. Baseline and care plan come from the latest report. Clinical
episodes and drills are kept apart, and a drill never joins the clinical trend.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from cloud_expert.accounts import Viewer, audit
from cloud_expert.db import Episode, Report
from cloud_expert.scope import scoped
from cloud_expert.web.deps import SessionDep, TemplatesDep
from cloud_expert.web.routes.common import ID_PATTERN
from cloud_expert.web.security import Reader, client_of

router = APIRouter(tags=["patients"])

PatientId = Annotated[str, Path(pattern=ID_PATTERN, description="Pseudonymous patient id")]


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


class PatientPublic(BaseModel):
    patient_id: str
    sites: list[str]
    devices: dict[str, datetime] = Field(description="Device → last seen in an episode")
    clinical: list[TimelineEntry] = Field(description="Oldest first")
    drills: list[TimelineEntry]
    baseline_hr_bpm: float | None
    care_plan: list[str]


def patient_story(session: SessionDep, viewer: Viewer, patient_id: str) -> PatientPublic:
    rows = session.execute(scoped(select(Episode, Report).outerjoin(Report, Report.episode_id == Episode.id)
                                  .where(Episode.patient_id == patient_id).order_by(Episode.received_at),
                                  viewer.scope)).all()
    if not rows:
        raise HTTPException(status_code=404, detail=f"patient {patient_id!r} not found")
    entries, devices = [], {}
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
        devices[episode.device_id] = episode.received_at
        if report is not None and not episode.drill and report.assessment_json:
            plan = list(report.assessment_json.get("care_plan") or [])
            baseline = (report.assessment_json.get("history") or {}).get("baseline_hr_bpm")
    return PatientPublic(patient_id=patient_id, sites=sorted({e.site for e, _ in rows}), devices=devices,
                         clinical=[e for e in entries if not e.drill], drills=[e for e in entries if e.drill],
                         baseline_hr_bpm=baseline, care_plan=plan)


def trend_svg(entries: list[TimelineEntry], width: int = 720, height: int = 160) -> str:
    """The clinical rate at each alert as a small line chart (server-drawn: no script, no library)."""
    points: list[tuple[float, float]] = []
    for e in entries:
        hr = e.phone_hr_bpm if e.phone_hr_bpm is not None else e.hr_bpm
        if hr is not None:
            points.append((e.received_at.timestamp(), float(hr)))
    if len(points) < 2:
        return ""
    t0, t1 = points[0][0], points[-1][0]
    lo, hi = min(hr for _, hr in points) - 10, max(hr for _, hr in points) + 10
    span_t, span_hr = max(t1 - t0, 1.0), max(hi - lo, 1.0)
    xy = [(20 + (t - t0) / span_t * (width - 40), height - 20 - (hr - lo) / span_hr * (height - 40))
          for t, hr in points]
    line = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    dots = "".join(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3"/>' for x, y in xy)
    return (f'<svg viewBox="0 0 {width} {height}" role="img" aria-label="heart rate at each alert" class="trend">'
            f'<text x="4" y="14">{hi:.0f} bpm</text><text x="4" y="{height - 4}">{lo:.0f} bpm</text>'
            f'<polyline fill="none" stroke="#b00" stroke-width="2" points="{line}"/>'
            f'<g fill="#b00">{dots}</g></svg>')


@router.get("/api/patients/{patient_id}", response_model=PatientPublic,
            responses={404: {"description": "No such patient for this user"}})
def patient_json(request: Request, session: SessionDep, viewer: Reader, patient_id: PatientId) -> PatientPublic:
    """The patient's episodes (clinical and drills apart), devices, baseline and care plan (recorded)."""
    story = patient_story(session, viewer, patient_id)
    audit(session, viewer.username, "viewed_patient", patient_id, "json", client=client_of(request))
    session.commit()
    return story


@router.get("/patients/{patient_id}", response_class=HTMLResponse, include_in_schema=False)
def patient_page(request: Request, session: SessionDep, templates: TemplatesDep, viewer: Reader,
                 patient_id: PatientId) -> HTMLResponse:
    story = patient_story(session, viewer, patient_id)
    audit(session, viewer.username, "viewed_patient", patient_id, "html", client=client_of(request))
    session.commit()
    return templates.TemplateResponse(request, "patient.html", {"p": story, "viewer": viewer,
                                                                "trend": trend_svg(story.clinical)})
