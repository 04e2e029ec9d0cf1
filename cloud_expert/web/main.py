"""The FastAPI app factory. Run with `uvicorn --factory cloud_expert.web.main:app_from_env`."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates

from cloud_expert.db import encryption, make_engine, make_session_factory, upgrade_to_head
from cloud_expert.web.routes import alerts, auth, dashboard, fhir, reports
from cloud_expert.web.security import NotSignedIn
from shared.settings import Settings, get_settings

TEMPLATES_DIR = Path(__file__).resolve().parent / "templates"


def create_app(settings: Settings) -> FastAPI:
    """The dashboard + API over the cloud DB of `settings` (schema brought to head first)."""
    url = settings.effective_database_url
    encryption.configure(settings.data_keys)
    upgrade_to_head(url)
    app = FastAPI(title="CardioMesh cloud", version="0.1.0",
                  description="Escalated cardiac episodes and their preliminary reports (clinician review).")
    app.state.settings = settings
    app.state.engine = make_engine(url)
    app.state.sessions = make_session_factory(app.state.engine)
    app.state.templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
    for module in (auth, alerts, reports, fhir, dashboard):
        app.include_router(module.router)
    app.include_router(reports.pages)
    app.add_exception_handler(NotSignedIn, _not_signed_in)
    return app


async def _not_signed_in(request: Request, exc: Exception) -> Response:
    """A browser goes to the sign-in page (and comes back after); an API client gets 401."""
    path = request.url.path
    wants_html = "text/html" in request.headers.get("accept", "")
    if wants_html and request.method in ("GET", "HEAD") and not path.startswith(("/api/", "/fhir/")):
        return RedirectResponse(f"/login?{urlencode({'next': path})}", status_code=303)
    return JSONResponse({"detail": "sign in first (a session cookie, or Authorization: Bearer <token>)"},
                        status_code=401, headers={"WWW-Authenticate": "Bearer"})


def app_from_env() -> FastAPI:
    """Factory for uvicorn: settings from `CARDIOMESH_*` environment variables."""
    return create_app(get_settings())
