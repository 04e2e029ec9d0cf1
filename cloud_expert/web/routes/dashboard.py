"""`/episodes` (every escalated episode and report, newest first) and `/healthz`. The landing page `/` is the
triage queue (`routes/queue.py`)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from cloud_expert.accounts import audit
from cloud_expert.ingest import clinical_counts
from cloud_expert.scope import EVERYTHING
from cloud_expert.web import crud
from cloud_expert.web.deps import SessionDep, TemplatesDep
from cloud_expert.web.schemas import Health
from cloud_expert.web.security import Reader, client_of

router = APIRouter(tags=["dashboard"])


@router.get("/episodes", response_class=HTMLResponse)
def dashboard(request: Request, session: SessionDep, templates: TemplatesDep, viewer: Reader) -> HTMLResponse:
    scope = viewer.scope
    page = templates.TemplateResponse(request, "dashboard.html", {
        "alerts": crud.list_alerts(session=session, limit=100, include_drills=True, scope=scope),
        "reports": crud.list_reports(session=session, limit=100, include_drills=True, scope=scope),
        "counts": clinical_counts(session) if scope == EVERYTHING else None,
        "viewer": viewer,
    })
    audit(session, viewer.username, "viewed_dashboard", None, None, client=client_of(request))
    session.commit()
    return page


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
def healthz(session: SessionDep) -> Health | JSONResponse:
    try:
        session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return JSONResponse(status_code=503, content={"status": "degraded", "database": "unreachable"})
    return Health(status="ok", database="ok")
