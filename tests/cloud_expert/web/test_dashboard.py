"""/episodes, /healthz, /docs, error pages, HEAD, and times in the site's time zone."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

from cloud_expert.db import Episode
from cloud_expert.web import create_app
from shared.settings import Settings
from tests.cloud_expert.web.conftest import PASSWORD, Seeded, add_account
from tests.cloud_expert.web.signin import sign_in


def test_dashboard_lists_alerts_and_marks_drills(client: TestClient, seeded: Seeded) -> None:
    response = client.get("/episodes")
    assert response.status_code == 200
    page = response.text
    assert 'http-equiv="refresh"' not in page  # the live view is the queue, pushed; this list never reloads itself
    assert f'href="/reports/{seeded.clinical_report}"' in page and f'href="/reports/{seeded.drill_report}"' in page
    assert page.count('<span class="drill-tag">DRILL</span>') == 2  # once in alerts, once in reports
    assert "2 episodes, 1 reports" in page  # clinical figures exclude the drill


def test_dashboard_empty(client: TestClient) -> None:
    response = client.get("/episodes")
    assert response.status_code == 200 and "No escalations yet." in response.text


def test_dashboard_bad_method(client: TestClient) -> None:
    assert client.post("/episodes").status_code == 405


def test_healthz(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok", "database": "ok"}


def test_healthz_reports_an_unreachable_database(client: TestClient) -> None:
    broken = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none", connect_args={"connect_timeout": 1})
    client.app.state.sessions = sessionmaker(broken)  # type: ignore[attr-defined]
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json()["database"] == "unreachable"


def test_openapi_docs(client: TestClient) -> None:
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/alerts", "/api/reports", "/api/reports/{report_id}", "/reports/{report_id}"} <= set(paths)


def test_the_api_reference_reads_without_the_internet(anonymous: TestClient) -> None:
    page = anonymous.get("/docs")
    assert page.status_code == 200 and anonymous.head("/docs").status_code == 200
    assert not re.findall(r'(?:src|href)="(?:https?:)?//', page.text)  # no script or style from elsewhere
    for path in anonymous.get("/openapi.json").json()["paths"]:
        assert f"<code>{path}</code>" in page.text, path
    assert anonymous.get("/redoc").status_code == 404  # ReDoc, like Swagger UI, needs a CDN: not served
    icon = anonymous.get("/favicon.ico")
    assert icon.status_code == 200 and icon.headers["content-type"] == "image/svg+xml"


def test_browsers_get_error_pages_and_the_api_gets_json(client: TestClient) -> None:
    page = client.get("/reports/no-such-report", headers={"accept": "text/html"})
    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "Not found" in page.text and 'href="/"' in page.text
    api = client.get("/api/reports/no-such-report", headers={"accept": "text/html"})
    assert api.status_code == 404 and api.json() == {"detail": "report 'no-such-report' not found"}


def test_head_works_wherever_get_does(client: TestClient, seeded: Seeded) -> None:
    for path in ("/healthz", "/login", "/", "/episodes", f"/reports/{seeded.clinical_report}", "/api/reports"):
        get, head = client.get(path), client.head(path)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"], path


def test_times_are_shown_in_the_sites_time_zone(settings: Settings, seeded: Seeded) -> None:
    app = create_app(settings.model_copy(update={"site_timezone": "Asia/Kolkata"}))  # UTC+5:30, no DST; same DB
    with TestClient(app) as c:
        add_account(c, "dr-tz", "clinician")
        assert sign_in(c, "dr-tz", PASSWORD).status_code == 303
        page = c.get("/episodes").text
        assert "Received (Asia/Kolkata)" in page
        shown = re.findall(r"<td>(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", page)
        with app.state.sessions() as session:
            newest = session.scalar(select(Episode.received_at).order_by(Episode.received_at.desc()))
        assert newest is not None
        assert shown[0] == (newest + timedelta(hours=5, minutes=30)).strftime("%Y-%m-%d %H:%M:%S")
    app.state.engine.dispose()
    with pytest.raises(ValueError, match="not an IANA time zone"):
        create_app(settings.model_copy(update={"site_timezone": "Mars/Olympus"}))
