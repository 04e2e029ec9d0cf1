"""A web app on a fresh SQLite file, seeded with one clinical and one drill episode (both reported)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from cloud_expert.accounts import add_user
from cloud_expert.db import Report
from cloud_expert.ingest import store_escalation
from cloud_expert.reports.jobs import run_report_job
from cloud_expert.web import create_app
from shared.messages import utcnow
from shared.settings import Settings
from tests.cloud_expert.factories import make_escalation
from tests.cloud_expert.web.signin import sign_in


@dataclass(frozen=True)
class Seeded:
    clinical_alert: str
    clinical_report: str
    drill_alert: str
    drill_report: str
    pending_alert: str
    patient_id: str


PASSWORD = "correct horse battery staple"


def add_account(client: TestClient, username: str, role: str, sites: list[str] | None = None, *,
                patients: list[str] | None = None) -> None:
    with client.app.state.sessions() as session:  # type: ignore[attr-defined]
        add_user(session, username, PASSWORD, role, sites, patients=patients)
        session.commit()


@pytest.fixture
def anonymous(settings: Settings) -> Iterator[TestClient]:
    """The app, and a client that has not signed in."""
    app = create_app(settings)
    with TestClient(app) as test_client:
        yield test_client
    app.state.engine.dispose()


@pytest.fixture
def client(anonymous: TestClient) -> TestClient:
    """Signed in as an admin who sees every site (the routes' own behaviour; access is tested apart)."""
    add_account(anonymous, "admin-1", "admin")
    assert sign_in(anonymous, "admin-1", PASSWORD).status_code == 303
    return anonymous


@pytest.fixture
def seeded(anonymous: TestClient, unique: str) -> Seeded:
    sessions = anonymous.app.state.sessions  # type: ignore[attr-defined]
    t0 = utcnow()
    ids: list[str] = []
    with sessions() as session:
        for i, (drill, level) in enumerate([(False, "emergency"), (True, "urgent"), (False, "info")]):
            msg = make_escalation(site=f"s{unique}", patient_id=f"p{unique}", drill=drill, level=level)
            episode, job, _ = store_escalation(session, msg, t0 + timedelta(seconds=i))
            ids.append(episode.id)
            session.commit()
            if i < 2:
                run_report_job(sessions, job.id, now=utcnow)
        report_ids = {r.episode_id: r.id for r in session.scalars(select(Report))}
    return Seeded(ids[0], report_ids[ids[0]], ids[1], report_ids[ids[1]], ids[2], f"p{unique}")
