"""Who may see what: every route but sign-in, health and the API schema needs a signed-in user.

A browser carries its session in the `cm_session` cookie (HttpOnly; SameSite=Lax; Secure when the request
came over HTTPS); a script sends `Authorization: Bearer <token>` (`cardiomesh user token`). A state-changing
request made with the cookie must also carry the session's CSRF token (the `X-CSRF-Token` header, or the
`csrf_token` field of a form): a page of another origin can make the browser send the cookie, never the
token. A bearer token is not ambient authority, so it needs none.

Unauthenticated, a browser is sent to /login (303) and an API client gets 401; a signed-in user without
the role gets 403. Patient data is scoped to the user's sites; an operator sees drills only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import Depends, HTTPException, Request

from cloud_expert.accounts import Viewer, csrf_ok, viewer_for
from cloud_expert.web.deps import SessionDep

COOKIE = "cm_session"
LOGIN_CSRF_COOKIE = "cm_login_csrf"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
READERS = ("clinician", "technician", "operator", "admin")
MAX_FORM_BYTES = 16 * 1024


class NotSignedIn(Exception):
    """Raised by the dependencies; the app turns it into a redirect (browsers) or a 401 (API)."""


def presented_token(request: Request) -> tuple[str | None, bool]:
    """(token, came as a cookie)."""
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        return header[7:].strip() or None, False
    return request.cookies.get(COOKIE), True


async def form_fields(request: Request) -> dict[str, str]:
    """An urlencoded form body's fields (first value each); {} for anything else. Starlette keeps the body,
    so a handler can read it again."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise HTTPException(status_code=413, detail="form too large")
    return {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}


async def current_viewer(request: Request, session: SessionDep) -> Viewer:
    token, by_cookie = presented_token(request)
    viewer = viewer_for(session, token) if token else None
    if viewer is None:
        raise NotSignedIn()
    if by_cookie and request.method not in SAFE_METHODS:
        presented = request.headers.get("x-csrf-token") or (await form_fields(request)).get("csrf_token")
        if not csrf_ok(viewer, presented):
            raise HTTPException(status_code=403, detail="missing or wrong CSRF token")
    request.state.viewer = viewer
    return viewer


def require(*roles: str) -> Callable[[Viewer], Viewer]:
    def check(viewer: Annotated[Viewer, Depends(current_viewer)]) -> Viewer:
        if viewer.role not in roles:
            raise HTTPException(status_code=403, detail=f"{viewer.role} may not do this")
        return viewer

    return check


def client_of(request: Request) -> str | None:
    return request.client.host if request.client else None


def secure_cookies(request: Request) -> bool:
    return request.url.scheme == "https" or request.headers.get("x-forwarded-proto") == "https"


Reader = Annotated[Viewer, Depends(require(*READERS))]
Admin = Annotated[Viewer, Depends(require("admin"))]
Signer = Annotated[Viewer, Depends(require("clinician", "admin"))]
AnyViewer = Annotated[Viewer, Depends(current_viewer)]
