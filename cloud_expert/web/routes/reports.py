"""`/api/reports` (JSON metadata) and `/reports/{id}` (the HTML report itself)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse

from cloud_expert.web import crud
from cloud_expert.web.deps import SessionDep
from cloud_expert.web.routes.common import IncludeDrills, Limit, ReportId
from cloud_expert.web.schemas import ReportPublic

router = APIRouter(prefix="/api/reports", tags=["reports"])
pages = APIRouter(prefix="/reports", tags=["reports"])


def _not_found(report_id: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"report {report_id!r} not found")


@router.get("", response_model=list[ReportPublic])
def list_reports(session: SessionDep, limit: Limit = 50, include_drills: IncludeDrills = True) -> list[ReportPublic]:
    return crud.list_reports(session=session, limit=limit, include_drills=include_drills)


@router.get("/{report_id}", response_model=ReportPublic, responses={404: {"description": "No such report"}})
def get_report(session: SessionDep, report_id: ReportId) -> ReportPublic:
    report = crud.get_report(session=session, report_id=report_id)
    if report is None:
        raise _not_found(report_id)
    return report


@pages.get("/{report_id}", response_class=HTMLResponse, responses={404: {"description": "No such report"}})
def report_page(session: SessionDep, report_id: ReportId) -> HTMLResponse:
    html = crud.get_report_html(session=session, report_id=report_id)
    if html is None:
        raise _not_found(report_id)
    return HTMLResponse(html)
