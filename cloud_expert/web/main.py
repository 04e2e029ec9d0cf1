"""The FastAPI app factory. Run with `uvicorn --factory cloud_expert.web.main:app_from_env`."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.exceptions import HTTPException as StarletteHTTPException

from cloud_expert.db import encryption, make_engine, make_session_factory, upgrade_to_head
from cloud_expert.web.head import HeadAsGet
from cloud_expert.web.routes import (
    alerts,
    auth,
    dashboard,
    docs,
    drills,
    fhir,
    patients,
    queue,
    reports,
    strips,
    traces,
    users,
)
from cloud_expert.web.security import NotSignedIn
from shared.settings import Settings, get_settings

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


def create_app(settings: Settings) -> FastAPI:
    """The dashboard + API over the cloud DB of `settings` (schema brought to head first)."""
    url = settings.effective_database_url
    encryption.configure(settings.data_keys)
    upgrade_to_head(url)
    app = FastAPI(title="CardioMesh cloud", version="0.1.0", docs_url=None, redoc_url=None,
                  description="Escalated cardiac episodes and their preliminary reports (clinician review).")
    app.state.settings = settings
    app.state.engine = make_engine(url)
    app.state.sessions = make_session_factory(app.state.engine)
    app.state.templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    zone = site_zone(settings.site_timezone)
    app.state.templates.env.filters["local"] = lambda at, fmt="%Y-%m-%d %H:%M:%S": at.astimezone(zone).strftime(fmt)
    app.state.templates.env.globals["tz"] = settings.site_timezone
    for module in (auth, alerts, reports, fhir, dashboard, docs, queue, strips, traces, patients, drills, users):
        app.include_router(module.router)
    app.include_router(reports.pages)
    app.add_exception_handler(NotSignedIn, _not_signed_in)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(HeadAsGet)
    return app


def _wants_page(request: Request) -> bool:
    """A browser navigating (not the JSON API, FHIR or a script): it gets HTML, the rest JSON."""
    return ("text/html" in request.headers.get("accept", "")
            and not request.url.path.startswith(("/api/", "/fhir/", "/openapi.json")))


async def _http_error(request: Request, exc: Exception) -> Response:
    """An error page for a browser, FastAPI's JSON for everyone else."""
    assert isinstance(exc, StarletteHTTPException)
    if not _wants_page(request):
        return await http_exception_handler(request, exc)
    templates: Jinja2Templates = request.app.state.templates
    title = {401: "Sign in first", 403: "Not allowed", 404: "Not found", 405: "Not allowed here",
             409: "Not possible now", 429: "Too many tries"}.get(exc.status_code, "Error")
    return templates.TemplateResponse(request, "error.html", {"status": exc.status_code, "title": title,
                                                              "detail": exc.detail},
                                      status_code=exc.status_code, headers=exc.headers)


async def _not_signed_in(request: Request, exc: Exception) -> Response:
    """A browser goes to the sign-in page (and comes back after); an API client gets 401."""
    path = request.url.path
    if _wants_page(request) and request.method in ("GET", "HEAD"):
        return RedirectResponse(f"/login?{urlencode({'next': path})}", status_code=303)
    return JSONResponse({"detail": "sign in first (a session cookie, or Authorization: Bearer <token>)"},
                        status_code=401, headers={"WWW-Authenticate": "Bearer"})


def site_zone(name: str) -> ZoneInfo:
    """The site's time zone, or a clear error at start-up (not a crash on the first page)."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"CARDIOMESH_SITE_TIMEZONE={name!r} is not an IANA time zone (e.g. Europe/Paris)") from None


def app_from_env() -> FastAPI:
    """Factory for uvicorn: settings from `CARDIOMESH_*` environment variables."""
    return create_app(get_settings())
