"""`/admin/users`: accounts for admins — add one (role, sites, assigned patients, a first password), assign
patients, disable or enable — the same rules and audit as `cardiomesh user`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy import select

from cloud_expert.accounts import ROLES, AccountError, NoSuchUser, add_user, assign_patients, set_disabled
from cloud_expert.db import User
from cloud_expert.web.deps import SessionDep, TemplatesDep
from cloud_expert.web.security import Admin, form_fields

router = APIRouter(tags=["accounts"], include_in_schema=False)
Username = Annotated[str, Path(pattern=r"^[A-Za-z0-9._@\-]{1,64}$")]


def _page(request: Request, session: SessionDep, templates: TemplatesDep, viewer: Admin, *, error: str | None = None,
          status: int = 200) -> HTMLResponse:
    users = list(session.scalars(select(User).order_by(User.username)))
    return templates.TemplateResponse(request, "users.html", {"users": users, "viewer": viewer, "roles": ROLES,
                                                              "error": error}, status_code=status)


@router.get("/admin/users", response_class=HTMLResponse)
def users_page(request: Request, session: SessionDep, templates: TemplatesDep, viewer: Admin) -> HTMLResponse:
    return _page(request, session, templates, viewer)


@router.post("/admin/users", response_class=HTMLResponse)
async def users_add(request: Request, session: SessionDep, templates: TemplatesDep, viewer: Admin) -> Response:
    fields = await form_fields(request)
    sites = _listed(fields.get("sites", ""))
    try:
        add_user(session, fields.get("username", ""), fields.get("password", ""), fields.get("role", ""),
                 sites or None, by=viewer.username, patients=_listed(fields.get("patients", "")) or None)
    except AccountError as exc:
        session.rollback()
        return _page(request, session, templates, viewer, error=str(exc), status=409)
    session.commit()
    return RedirectResponse("/admin/users", status_code=303)


def _listed(value: str) -> list[str]:
    return [s.strip() for s in value.split(",") if s.strip()]


@router.post("/admin/users/{username}/patients", response_class=HTMLResponse)
async def users_patients(request: Request, session: SessionDep, templates: TemplatesDep, viewer: Admin,
                         username: Username) -> Response:
    """Assign patients (comma-separated pseudonyms; empty: every patient of the user's sites)."""
    patients = _listed((await form_fields(request)).get("patients", ""))
    try:
        assign_patients(session, username, patients or None, by=viewer.username)
    except AccountError as exc:
        session.rollback()
        return _page(request, session, templates, viewer, error=str(exc),
                     status=404 if isinstance(exc, NoSuchUser) else 422)
    session.commit()
    return RedirectResponse("/admin/users", status_code=303)


@router.post("/admin/users/{username}/{state}", response_class=HTMLResponse)
def users_state(request: Request, session: SessionDep, templates: TemplatesDep, viewer: Admin, username: Username,
                state: Annotated[str, Path(pattern="^(disable|enable)$")]) -> Response:
    if username == viewer.username and state == "disable":
        return _page(request, session, templates, viewer, error="you cannot disable yourself", status=409)
    try:
        set_disabled(session, username, state == "disable", by=viewer.username)
    except AccountError as exc:
        session.rollback()
        return _page(request, session, templates, viewer, error=str(exc), status=404)
    session.commit()
    return RedirectResponse("/admin/users", status_code=303)
