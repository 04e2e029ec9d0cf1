"""/fhir/DiagnosticReport/{id}: application/fhir+json that re-parses with the R4B models; 404 OperationOutcome."""

from __future__ import annotations

from fastapi.testclient import TestClient
from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.operationoutcome import OperationOutcome

from tests.cloud_expert.web.conftest import Seeded


def test_clinical_report(client: TestClient, seeded: Seeded) -> None:
    response = client.get(f"/fhir/DiagnosticReport/{seeded.clinical_report}")
    assert response.status_code == 200 and response.headers["content-type"] == "application/fhir+json"
    DiagnosticReport.model_validate_json(response.text)
    body = response.json()
    assert body["id"] == seeded.clinical_report and body["status"] == "preliminary" and "meta" not in body
    codes = {o["code"]["coding"][0]["code"] for o in body["contained"][1:]}
    # HR and rhythm always; the cloud's re-analysis of the strip also measures intervals (PR, QRS, QT, QTc)
    assert {"8867-4", "8884-9"} <= codes


def test_drill_report_is_tagged(client: TestClient, seeded: Seeded) -> None:
    response = client.get(f"/fhir/DiagnosticReport/{seeded.drill_report}")
    DiagnosticReport.model_validate_json(response.text)
    assert response.json()["meta"]["tag"][0]["code"] == "drill"


def test_not_found(client: TestClient) -> None:
    response = client.get("/fhir/DiagnosticReport/nope")
    assert response.status_code == 404 and response.headers["content-type"] == "application/fhir+json"
    OperationOutcome.model_validate_json(response.text)
    assert response.json()["issue"][0]["code"] == "not-found"
    assert client.get("/fhir/DiagnosticReport/bad id!").status_code == 422
