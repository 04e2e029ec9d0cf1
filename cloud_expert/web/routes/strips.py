"""`/episodes/{alert_id}/strip` (the strip viewer: ECG paper, zoom, gain and speed, calipers, beat marks),
`/api/episodes/{alert_id}/strip` (its data: samples in mV, the beats the report reads, the event, and the full
disclosure: what the watch streamed after the alert, as its edge joined it) and
`/api/episodes/{alert_id}/disclosure` (whether that disclosure is in yet: an open page asks, then reloads)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field
from sqlalchemy import Integer, func, select

from cloud_expert.accounts import audit
from cloud_expert.db import Episode, StripSegment
from cloud_expert.reports.beats import detect_r_peaks
from cloud_expert.reports.render import read_alert_strip
from cloud_expert.scope import scoped
from cloud_expert.telemetry import disclosure
from cloud_expert.web.deps import SessionDep, TemplatesDep
from cloud_expert.web.routes.common import ID_PATTERN
from cloud_expert.web.security import Reader, client_of
from shared.messages import AlertMessage

router = APIRouter(tags=["strips"])

AlertId = Annotated[str, Path(pattern=ID_PATTERN, description="The episode's alert id")]


class AfterSegment(BaseModel):
    offset_s: float = Field(description="Start, seconds from the alert strip's first sample")
    fs: float
    samples_mv: list[float]
    beats_s: list[float] = Field(description="R peaks found by the QRS detector (no beat label), seconds from "
                                             "the segment's start")


class StripPublic(BaseModel):
    alert_id: str
    patient_id: str
    drill: bool
    kind: str
    lead: str
    fs: float
    t0_s: float = Field(description="Stream time of the first sample")
    event_s: float = Field(description="Where the event is, seconds from the first sample")
    samples_mv: list[float]
    beats_s: list[float] = Field(description="R peaks, seconds from the first sample (the report's reading)")
    ventricular: list[bool] = Field(description="Per beat: read as ventricular")
    beats_method: str
    after: list[AfterSegment] = Field(description="Full disclosure: ECG streamed after the alert, in order; "
                                                  "empty until the stream has ended")
    after_complete: bool | None = Field(description="None: nothing streamed (yet); False: the stream has gaps")


def episode_in_scope(session: SessionDep, viewer: Reader, alert_id: str) -> Episode:
    """The episode, if this viewer may see it; 404 otherwise (one answer for missing and out of scope)."""
    episode = session.scalar(scoped(select(Episode).where(Episode.id == alert_id), viewer.scope))
    if episode is None:
        raise HTTPException(status_code=404, detail=f"episode {alert_id!r} not found")
    return episode


@router.get("/api/episodes/{alert_id}/strip", response_model=StripPublic,
            responses={404: {"description": "No such episode"}})
def strip_data(request: Request, session: SessionDep, viewer: Reader, alert_id: AlertId) -> StripPublic:
    """The alert's strip with the beats the report reads on it (recorded in the audit log)."""
    episode = episode_in_scope(session, viewer, alert_id)
    alert = AlertMessage.model_validate(episode.alert_json)
    _, beats = read_alert_strip(alert)
    strip = alert.payload.strip
    segments = disclosure(session, episode.id)
    after = [AfterSegment(offset_s=round(seg.t0_s - strip.t0_s, 4), fs=seg.fs,
                          samples_mv=[round(float(v), 4) for v in seg.samples_mv],
                          beats_s=list(detect_r_peaks(seg.samples_mv, fs=seg.fs).r_peaks_s)) for seg in segments]
    audit(session, viewer.username, "viewed_strip", episode.id, None, client=client_of(request))
    session.commit()
    return StripPublic(alert_id=episode.id, patient_id=episode.patient_id, drill=episode.drill, kind=episode.kind,
                       lead=strip.lead, fs=strip.fs, t0_s=strip.t0_s, event_s=strip.event_s,
                       samples_mv=[round(float(v), 4) for v in strip.to_mv()], beats_s=list(beats.r_peaks_s),
                       ventricular=list(beats.ventricular) or [False] * len(beats.r_peaks_s),
                       beats_method=beats.method, after=after,
                       after_complete=None if not segments else all(seg.complete for seg in segments))


class DisclosureStatus(BaseModel):
    segments: int = Field(description="Segments streamed after the alert and stored (0 until the stream has ended)")
    complete: bool | None = Field(description="None: nothing stored (yet); False: the stream has gaps")


@router.get("/api/episodes/{alert_id}/disclosure", response_model=DisclosureStatus,
            responses={404: {"description": "No such episode"}})
def disclosure_status(session: SessionDep, viewer: Reader, alert_id: AlertId) -> DisclosureStatus:
    """Whether the full disclosure has arrived: counts only, no ECG, so an open strip page can ask every few
    seconds without filling the audit log (it reloads the strip, audited, once this says it is in)."""
    episode = episode_in_scope(session, viewer, alert_id)
    count, complete = session.execute(
        select(func.count(), func.min(StripSegment.complete.cast(Integer)))
        .where(StripSegment.alert_id == episode.id)).one()
    return DisclosureStatus(segments=count, complete=None if not count else bool(complete))


@router.get("/episodes/{alert_id}/strip", response_class=HTMLResponse, include_in_schema=False)
def strip_page(request: Request, session: SessionDep, templates: TemplatesDep, viewer: Reader,
               alert_id: AlertId) -> HTMLResponse:
    episode = episode_in_scope(session, viewer, alert_id)
    return templates.TemplateResponse(request, "strip.html", {"episode": episode, "viewer": viewer})
