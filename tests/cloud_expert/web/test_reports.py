"""/api/reports, /api/reports/{id}, /reports/{id}: ok, not found, bad input."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.cloud_expert.web.conftest import Seeded


def test_list_reports(client: TestClient, seeded: Seeded) -> None:
    rows = client.get("/api/reports").json()
    assert {r["report_id"] for r in rows} == {seeded.clinical_report, seeded.drill_report}
    clinical = client.get("/api/reports", params={"include_drills": False}).json()
    assert [r["report_id"] for r in clinical] == [seeded.clinical_report]
    assert "html" not in clinical[0]


def test_get_report_metadata(client: TestClient, seeded: Seeded) -> None:
    response = client.get(f"/api/reports/{seeded.drill_report}")
    assert response.status_code == 200
    body = response.json()
    assert body["alert_id"] == seeded.drill_alert and body["drill"] is True and body["level"] == "urgent"
    assert body["url"] == f"/reports/{seeded.drill_report}" and body["rendered_ms"] > 0


def test_report_page_is_html(client: TestClient, seeded: Seeded) -> None:
    response = client.get(f"/reports/{seeded.clinical_report}")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert "requires clinician review" in response.text and "<svg" in response.text


def test_not_found_has_a_clear_detail(client: TestClient) -> None:
    for path in ("/api/reports/nope", "/reports/nope"):
        response = client.get(path)
        assert response.status_code == 404
        assert response.json()["detail"] == "report 'nope' not found"


def test_bad_input(client: TestClient) -> None:
    assert client.get("/api/reports/bad id!").status_code == 422
    assert client.get("/reports/" + "x" * 65).status_code == 422
    assert client.get("/api/reports", params={"limit": -1}).status_code == 422


def test_report_json_links_pdf_and_fhir(client: TestClient, seeded: Seeded) -> None:
    body = client.get(f"/api/reports/{seeded.clinical_report}").json()
    assert body["pdf_url"] == f"/reports/{seeded.clinical_report}.pdf"
    assert body["fhir_url"] == f"/fhir/DiagnosticReport/{seeded.clinical_report}"
    assert body["status"] == "preliminary" and body["signed_at"] is None and body["severity"] == "moderate"
    html = client.get(body["url"]).text
    assert f'href="{body["pdf_url"]}"' in html and f'href="{body["fhir_url"]}"' in html


def test_report_pdf(client: TestClient, seeded: Seeded) -> None:
    response = client.get(f"/reports/{seeded.drill_report}.pdf")
    assert response.status_code == 200 and response.headers["content-type"] == "application/pdf"
    assert response.content.startswith(b"%PDF-") and b"[DRILL] CardioMesh report" in response.content
    assert "inline" in response.headers["content-disposition"]
    missing = client.get("/reports/nope.pdf")
    assert missing.status_code == 404 and missing.json()["detail"] == "no PDF for report 'nope'"
