"""The FastAPI app factory. Run with `uvicorn --factory cloud_expert.web.main:app_from_env`."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.templating import Jinja2Templates

from cloud_expert.db import encryption, make_engine, make_session_factory, upgrade_to_head
from cloud_expert.web.routes import alerts, dashboard, fhir, reports
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
    for module in (alerts, reports, fhir, dashboard):
        app.include_router(module.router)
    app.include_router(reports.pages)
    return app


def app_from_env() -> FastAPI:
    """Factory for uvicorn: settings from `CARDIOMESH_*` environment variables."""
    return create_app(get_settings())
