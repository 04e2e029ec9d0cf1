"""`/api/reports` (JSON metadata), `/reports/{id}` (the HTML report) and `/reports/{id}.pdf` (the PDF).

Every read is recorded in the audit log (who, which report, in what form); a report outside the user's
sites is "not found", so its existence is not disclosed either.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy.orm import Session

from cloud_expert.accounts import Viewer, audit
from cloud_expert.web import crud
from cloud_expert.web.deps import SessionDep
from cloud_expert.web.routes.common import IncludeDrills, Limit, ReportId
from cloud_expert.web.schemas import ReportPublic
from cloud_expert.web.security import Reader, client_of, scope_of

router = APIRouter(prefix="/api/reports", tags=["reports"])
pages = APIRouter(prefix="/reports", tags=["reports"])


def _not_found(report_id: str) -> HTTPException:
    return HTTPException(status_code=404, detail=f"report {report_id!r} not found")


def viewed(session: Session, request: Request, viewer: Viewer, report_id: str, form: str) -> None:
    audit(session, viewer.username, "viewed_report", report_id, form, client=client_of(request))
    session.commit()


@router.get("", response_model=list[ReportPublic])
def list_reports(request: Request, session: SessionDep, viewer: Reader, limit: Limit = 50,
                 include_drills: IncludeDrills = True) -> list[ReportPublic]:
    reports = crud.list_reports(session=session, limit=limit, include_drills=include_drills, scope=scope_of(viewer))
    audit(session, viewer.username, "listed_reports", None, f"{len(reports)} rows", client=client_of(request))
    session.commit()
    return reports


@router.get("/{report_id}", response_model=ReportPublic, responses={404: {"description": "No such report"}})
def get_report(request: Request, session: SessionDep, viewer: Reader, report_id: ReportId) -> ReportPublic:
    report = crud.get_report(session=session, report_id=report_id, scope=scope_of(viewer))
    if report is None:
        raise _not_found(report_id)
    viewed(session, request, viewer, report_id, "json")
    return report


# Declared before `/{report_id}`: a report id may contain dots, so "/x.pdf" must reach this route first.
@pages.get("/{report_id}.pdf", response_class=Response,
           responses={200: {"content": {"application/pdf": {}}}, 404: {"description": "No such report or PDF"}})
def report_pdf(request: Request, session: SessionDep, viewer: Reader, report_id: ReportId) -> Response:
    pdf = crud.get_report_pdf(session=session, report_id=report_id, scope=scope_of(viewer))
    if pdf is None:
        raise HTTPException(status_code=404, detail=f"no PDF for report {report_id!r}")
    viewed(session, request, viewer, report_id, "pdf")
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="cardiomesh-report-{report_id}.pdf"'})


@pages.get("/{report_id}", response_class=HTMLResponse, responses={404: {"description": "No such report"}})
def report_page(request: Request, session: SessionDep, viewer: Reader, report_id: ReportId) -> HTMLResponse:
    html = crud.get_report_html(session=session, report_id=report_id, scope=scope_of(viewer))
    if html is None:
        raise _not_found(report_id)
    viewed(session, request, viewer, report_id, "html")
    return HTMLResponse(html)
