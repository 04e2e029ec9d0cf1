"""`/drills` (start a drill, see the site's drill history), `/drills/{id}` (follow one, hop by hop) and their
JSON at `/api/drills` — operators and admins. Drills only ever touch drill data."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from cloud_expert.accounts import Viewer
from cloud_expert.db import DrillRun
from cloud_expert.drills import SCENARIOS, DrillRefused, start_drill
from cloud_expert.web.deps import SessionDep, TemplatesDep
from cloud_expert.web.routes.common import ID_PATTERN
from cloud_expert.web.security import form_fields, require
from shared.messages import DrillScenario

router = APIRouter(tags=["drills"])
Driller = Annotated[Viewer, Depends(require("operator", "admin"))]
RunId = Annotated[str, Path(pattern=ID_PATTERN, description="Drill run id")]


class DrillIn(BaseModel):
    scenario: DrillScenario
    site: str = Field(min_length=1, max_length=64)
    watch_id: str | None = Field(None, max_length=64, description="Default: the first online watch of the site")


class DrillPublic(BaseModel):
    id: str
    site: str
    scenario: str
    watch_id: str | None
    requested_by: str
    started_at: datetime
    finished_at: datetime | None
    status: str = Field(description="running | passed | failed")
    trace_id: str | None
    lines: list[str] = Field(description="Every hop as it arrived, with its time")
    report_urls: list[str]
    error: str | None


def _runs(session: Session, viewer: Viewer, limit: int = 50) -> list[DrillRun]:
    stmt = select(DrillRun).order_by(DrillRun.started_at.desc()).limit(limit)
    if viewer.sites is not None:
        stmt = stmt.where(DrillRun.site.in_(viewer.sites))
    return list(session.scalars(stmt))


def _run(session: Session, viewer: Viewer, run_id: str) -> DrillRun:
    run = session.get(DrillRun, run_id)
    if run is None or not viewer.scope.allows_site(run.site):
        raise HTTPException(status_code=404, detail=f"drill {run_id!r} not found")
    return run


def _start(request: Request, viewer: Viewer, scenario: str, site: str, watch_id: str | None) -> str:
    try:
        return start_drill(request.app.state.sessions, request.app.state.settings, viewer, scenario=scenario,
                           site=site, watch_id=watch_id)
    except DrillRefused as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from None


@router.get("/drills", response_class=HTMLResponse, include_in_schema=False)
def drills_page(request: Request, session: SessionDep, templates: TemplatesDep, viewer: Driller) -> HTMLResponse:
    return templates.TemplateResponse(request, "drills.html", {
        "viewer": viewer, "runs": _runs(session, viewer), "scenarios": SCENARIOS,
        "default_site": (viewer.sites or (request.app.state.settings.site,))[0]})


@router.post("/drills", include_in_schema=False)
async def drills_form(request: Request, viewer: Driller) -> Response:
    fields = await form_fields(request)
    run_id = _start(request, viewer, fields.get("scenario", ""), fields.get("site", ""), fields.get("watch_id"))
    return RedirectResponse(f"/drills/{run_id}", status_code=303)


@router.get("/drills/{run_id}", response_class=HTMLResponse, include_in_schema=False)
def drill_page(request: Request, session: SessionDep, templates: TemplatesDep, viewer: Driller,
               run_id: RunId) -> HTMLResponse:
    return templates.TemplateResponse(request, "drill.html", {"viewer": viewer, "run": _run(session, viewer, run_id)})


@router.get("/api/drills", response_model=list[DrillPublic])
def drills_json(session: SessionDep, viewer: Driller) -> list[DrillPublic]:
    """The drill history of the user's sites, newest first."""
    return [DrillPublic.model_validate(r, from_attributes=True) for r in _runs(session, viewer)]


@router.post("/api/drills", response_model=DrillPublic, status_code=202,
             responses={409: {"description": "Not allowed as asked"}})
def drill_start(request: Request, session: SessionDep, viewer: Driller, body: DrillIn) -> DrillPublic:
    """Start a drill on a site (the same path as `cardiomesh drill run`); follow it at /api/drills/{id}."""
    run_id = _start(request, viewer, body.scenario, body.site, body.watch_id)
    return DrillPublic.model_validate(_run(session, viewer, run_id), from_attributes=True)


@router.get("/api/drills/{run_id}", response_model=DrillPublic, responses={404: {"description": "No such drill"}})
def drill_json(session: SessionDep, viewer: Driller, run_id: RunId) -> DrillPublic:
    """One drill: its hops so far, its report(s), passed or failed."""
    return DrillPublic.model_validate(_run(session, viewer, run_id), from_attributes=True)
