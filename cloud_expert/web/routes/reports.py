"""`/api/reports` (JSON metadata), `/reports/{id}` (the HTML report) and `/reports/{id}.pdf` (the PDF).

Every read is recorded in the audit log (who, which report, in what form); a report outside the user's
sites is "not found", so its existence is not disclosed either.
"""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.orm import Session

from cloud_expert.accounts import Viewer, audit
from cloud_expert.signoff import VERDICTS, ReviewError, review
from cloud_expert.web import crud
from cloud_expert.web.deps import SessionDep, TemplatesDep
from cloud_expert.web.routes.common import IncludeDrills, Limit, ReportId
from cloud_expert.web.schemas import ReportPublic, ReviewIn
from cloud_expert.web.security import Reader, Signer, client_of, form_fields

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
    reports = crud.list_reports(session=session, limit=limit, include_drills=include_drills, scope=viewer.scope)
    audit(session, viewer.username, "listed_reports", None, f"{len(reports)} rows", client=client_of(request))
    session.commit()
    return reports


@router.get("/{report_id}", response_model=ReportPublic, responses={404: {"description": "No such report"}})
def get_report(request: Request, session: SessionDep, viewer: Reader, report_id: ReportId) -> ReportPublic:
    report = crud.get_report(session=session, report_id=report_id, scope=viewer.scope)
    if report is None:
        raise _not_found(report_id)
    viewed(session, request, viewer, report_id, "json")
    return report


# Declared before `/{report_id}`: a report id may contain dots, so "/x.pdf" must reach this route first.
@pages.get("/{report_id}.pdf", response_class=Response,
           responses={200: {"content": {"application/pdf": {}}}, 404: {"description": "No such report or PDF"}})
def report_pdf(request: Request, session: SessionDep, viewer: Reader, report_id: ReportId) -> Response:
    pdf = crud.get_report_pdf(session=session, report_id=report_id, scope=viewer.scope)
    if pdf is None:
        raise HTTPException(status_code=404, detail=f"no PDF for report {report_id!r}")
    viewed(session, request, viewer, report_id, "pdf")
    return Response(pdf, media_type="application/pdf",
                    headers={"Content-Disposition": f'inline; filename="cardiomesh-report-{report_id}.pdf"'})


@pages.get("/{report_id}", response_class=HTMLResponse, responses={404: {"description": "No such report"}})
def report_page(request: Request, session: SessionDep, viewer: Reader, report_id: ReportId) -> HTMLResponse:
    html = crud.get_report_html(session=session, report_id=report_id, scope=viewer.scope)
    if html is None:
        raise _not_found(report_id)
    viewed(session, request, viewer, report_id, "html")
    return HTMLResponse(html)


def _review_context(session: Session, viewer: Viewer, report_id: str) -> ReportPublic:
    report = crud.get_report(session=session, report_id=report_id, scope=viewer.scope)
    if report is None:
        raise _not_found(report_id)
    return report


@pages.get("/{report_id}/review", response_class=HTMLResponse, include_in_schema=False)
def review_page(request: Request, session: SessionDep, templates: TemplatesDep, viewer: Signer,
                report_id: ReportId) -> HTMLResponse:
    report = _review_context(session, viewer, report_id)
    return templates.TemplateResponse(request, "review.html", {"report": report, "viewer": viewer, "error": None,
                                                               "verdicts": VERDICTS})


@pages.post("/{report_id}/review", response_class=HTMLResponse, include_in_schema=False)
async def review_form(request: Request, session: SessionDep, templates: TemplatesDep, viewer: Signer,
                      report_id: ReportId) -> Response:
    fields = await form_fields(request)
    try:
        review(session, report_id, viewer, action=fields.get("action", ""), reason=fields.get("reason"),
               verdict=fields.get("verdict") or None, rhythm=fields.get("rhythm"))
    except LookupError:
        raise _not_found(report_id) from None
    except ReviewError as exc:
        session.rollback()
        return templates.TemplateResponse(
            request, "review.html", {"report": _review_context(session, viewer, report_id), "viewer": viewer,
                                     "error": str(exc), "verdicts": VERDICTS}, status_code=409)
    session.commit()
    return RedirectResponse(f"/reports/{report_id}", status_code=303)


@router.post("/{report_id}/review", response_model=ReportPublic,
             responses={404: {"description": "No such report"}, 409: {"description": "Not allowed in its state"}})
def review_json(session: SessionDep, viewer: Signer, report_id: ReportId, body: ReviewIn) -> ReportPublic:
    """Sign, amend (with a reason) or reject (with a reason) a report, with the verdict on the alert
    (clinicians and admins; recorded)."""
    try:
        review(session, report_id, viewer, action=body.action, reason=body.reason, verdict=body.verdict,
               rhythm=body.rhythm)
    except LookupError:
        raise _not_found(report_id) from None
    except ReviewError as exc:
        session.rollback()
        raise HTTPException(status_code=409, detail=str(exc)) from None
    session.commit()
    return _review_context(session, viewer, report_id)
