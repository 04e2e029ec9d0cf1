"""`/api/reports` (JSON metadata), `/reports/{id}` (the HTML report) and `/reports/{id}.pdf` (the PDF)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException
from fastapi.responses import HTMLResponse, Response

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


# Declared before `/{report_id}`: a report id may contain dots, so "/x.pdf" must reach this route first.
@pages.get("/{report_id}.pdf", response_class=Response,
           responses={200: {"content": {"application/pdf": {}}}, 404: {"description": "No such report or PDF"}})
def report_pdf(session: SessionDep, report_id: ReportId) -> Response:
    pdf = crud.get_report_pdf(session=session, report_id=report_id)
    if pdf is None:
        raise HTTPException(status_code=404, detail=f"no PDF for report {report_id!r}")
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="cardiomesh-report-{report_id}.pdf"'})


@pages.get("/{report_id}", response_class=HTMLResponse, responses={404: {"description": "No such report"}})
def report_page(session: SessionDep, report_id: ReportId) -> HTMLResponse:
    html = crud.get_report_html(session=session, report_id=report_id)
    if html is None:
        raise _not_found(report_id)
    return HTMLResponse(html)
