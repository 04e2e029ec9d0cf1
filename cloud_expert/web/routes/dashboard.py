"""`/` (the dashboard page) and `/healthz`."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from cloud_expert.ingest import clinical_counts
from cloud_expert.web import crud
from cloud_expert.web.deps import SessionDep, TemplatesDep
from cloud_expert.web.schemas import Health

router = APIRouter(tags=["dashboard"])

REFRESH_S = 3


@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, session: SessionDep, templates: TemplatesDep) -> HTMLResponse:
    return templates.TemplateResponse(request, "dashboard.html", {
        "alerts": crud.list_alerts(session=session, limit=100, include_drills=True),
        "reports": crud.list_reports(session=session, limit=100, include_drills=True),
        "counts": clinical_counts(session),
        "refresh_s": REFRESH_S,
    })


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
def healthz(session: SessionDep) -> Health | JSONResponse:
    try:
        session.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return JSONResponse(status_code=503, content={"status": "degraded", "database": "unreachable"})
    return Health(status="ok", database="ok")
