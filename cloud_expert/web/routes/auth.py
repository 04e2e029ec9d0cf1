"""`/login`, `/logout`, and the audit log for admins (`/admin/audit`, `/api/audit`, `/api/audit.csv`)."""

from __future__ import annotations

import csv
import io
import secrets
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from cloud_expert.accounts import AccountError, LockedOut, audit, audit_entries, sign_in, sign_out
from cloud_expert.web.deps import SessionDep, TemplatesDep
from cloud_expert.web.schemas import AuditPublic
from cloud_expert.web.security import (
    COOKIE,
    LOGIN_CSRF_COOKIE,
    Admin,
    AnyViewer,
    client_of,
    form_fields,
    presented_token,
    secure_cookies,
)

router = APIRouter(tags=["accounts"])

AuditLimit = Annotated[int, Query(ge=1, le=10_000, description="Most entries, newest first")]


def safe_next(value: str | None) -> str:
    """Where to go after sign-in: a path on this site only (never another origin)."""
    if value and value.startswith("/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/"


def _login_page(request: Request, templates: TemplatesDep, *, error: str | None, next_path: str,
                status: int) -> HTMLResponse:
    token = secrets.token_urlsafe(32)
    page = templates.TemplateResponse(request, "login.html", {"error": error, "next": next_path, "csrf": token},
                                      status_code=status)
    page.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=secure_cookies(request),
                    path="/login")
    return page


@router.get("/login", response_class=HTMLResponse, include_in_schema=False)
def login_form(request: Request, templates: TemplatesDep, next: str | None = None) -> HTMLResponse:
    return _login_page(request, templates, error=None, next_path=safe_next(next), status=200)


@router.post("/login", response_class=HTMLResponse, include_in_schema=False)
async def login(request: Request, session: SessionDep, templates: TemplatesDep) -> Response:
    fields = await form_fields(request)
    next_path = safe_next(fields.get("next"))
    expected = request.cookies.get(LOGIN_CSRF_COOKIE)
    if not expected or not secrets.compare_digest(expected, fields.get("csrf_token", "")):
        return _login_page(request, templates, error="The form expired: please sign in again.", next_path=next_path,
                           status=403)
    try:
        token, _viewer = sign_in(session, fields.get("username", ""), fields.get("password", ""),
                                 client=client_of(request))
    except LockedOut as exc:
        session.commit()
        return _login_page(request, templates, error=str(exc), next_path=next_path, status=429)
    except AccountError as exc:
        session.commit()  # the failure is audited (and counts toward the lockout)
        return _login_page(request, templates, error=str(exc), next_path=next_path, status=401)
    session.commit()
    done = RedirectResponse(next_path, status_code=303)
    # a new token at every sign-in: a session id planted before sign-in could never be the one used after
    done.set_cookie(COOKIE, token, httponly=True, samesite="lax", secure=secure_cookies(request), path="/")
    done.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return done


@router.post("/logout", include_in_schema=False)
def logout(request: Request, session: SessionDep, viewer: AnyViewer) -> RedirectResponse:
    token, _ = presented_token(request)
    if token:
        sign_out(session, token)
        session.commit()
    done = RedirectResponse("/login", status_code=303)
    done.delete_cookie(COOKIE, path="/")
    return done


@router.get("/admin/audit", response_class=HTMLResponse, include_in_schema=False)
def audit_page(request: Request, session: SessionDep, templates: TemplatesDep, viewer: Admin,
               limit: AuditLimit = 200) -> HTMLResponse:
    entries = audit_entries(session, limit=limit)
    audit(session, viewer.username, "viewed_audit", None, None, client=client_of(request))
    session.commit()
    return templates.TemplateResponse(request, "audit.html", {"entries": entries, "viewer": viewer})


@router.get("/api/audit", response_model=list[AuditPublic])
def audit_json(request: Request, session: SessionDep, viewer: Admin, limit: AuditLimit = 200) -> list[AuditPublic]:
    """The audit log, newest first (admins only; reading it is itself recorded)."""
    entries = [AuditPublic.model_validate(e, from_attributes=True) for e in audit_entries(session, limit=limit)]
    audit(session, viewer.username, "viewed_audit", None, "json", client=client_of(request))
    session.commit()
    return entries


@router.get("/api/audit.csv", response_class=Response, responses={200: {"content": {"text/csv": {}}}})
def audit_csv(request: Request, session: SessionDep, viewer: Admin, limit: AuditLimit = 10_000) -> Response:
    """The audit log as CSV, for an archive or a spreadsheet (admins only; recorded)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "at", "username", "action", "target", "detail", "client"])
    for e in audit_entries(session, limit=limit):
        writer.writerow([e.id, e.at.isoformat(), e.username or "", e.action, e.target or "", e.detail or "",
                         e.client or ""])
    audit(session, viewer.username, "exported_audit", None, "csv", client=client_of(request))
    session.commit()
    return Response(out.getvalue(), media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="cardiomesh-audit.csv"'})
