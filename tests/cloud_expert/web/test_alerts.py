"""/api/alerts: ok, ordering, drill filter, bad input."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.cloud_expert.web.conftest import Seeded


def test_list_newest_first_with_report_status(client: TestClient, seeded: Seeded) -> None:
    response = client.get("/api/alerts")
    assert response.status_code == 200
    rows = response.json()
    assert [r["alert_id"] for r in rows] == [seeded.pending_alert, seeded.drill_alert, seeded.clinical_alert]
    pending, drill, clinical = rows
    assert pending["report_status"] == "queued" and pending["report_id"] is None and pending["report_url"] is None
    assert drill["drill"] is True and drill["level"] == "urgent" and drill["report_id"] == seeded.drill_report
    assert clinical["report_url"] == f"/reports/{seeded.clinical_report}" and clinical["kind"] == "tachycardia"


def test_limit_and_exclude_drills(client: TestClient, seeded: Seeded) -> None:
    assert len(client.get("/api/alerts", params={"limit": 1}).json()) == 1
    rows = client.get("/api/alerts", params={"include_drills": "false"}).json()
    assert {r["alert_id"] for r in rows} == {seeded.clinical_alert, seeded.pending_alert}


def test_empty_list(client: TestClient) -> None:
    response = client.get("/api/alerts")
    assert response.status_code == 200 and response.json() == []


def test_bad_input(client: TestClient) -> None:
    for params in ({"limit": 0}, {"limit": 501}, {"limit": "many"}, {"include_drills": "perhaps"}):
        assert client.get("/api/alerts", params=params).status_code == 422, params
