"""FHIR export: validated by the R4B models on the way out and again on re-parsing; LOINC codes; drills tagged.

Assertions read the JSON of the re-parsed model (every FHIR field is optional, so the dict is the plain view).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.diagnosticreport import DiagnosticReport

from cloud_expert.reports import fhir
from cloud_expert.reports.measurements import Measurements
from cloud_expert.reports.rules import assess

AT = datetime(2025, 11, 27, 12, 0, tzinfo=UTC)


def _input(*, drill: bool = False, signed: bool = False, patient: str = "p-abc", **measured: object) -> fhir.FhirInput:
    m = Measurements(alert_kind="pause", **measured)  # type: ignore[arg-type]
    return fhir.FhirInput(report_id="r1", patient_id=patient, trace_id="t1", drill=drill, effective_at=AT,
                          issued_at=AT, assessment=assess(m, [], now=AT).to_json(),
                          signed_at=AT if signed else None)


def _roundtrip(data: fhir.FhirInput) -> dict[str, Any]:
    """Export, serialise, re-parse with the R4B model (validation), and hand back the re-parsed JSON."""
    text = fhir.to_json(fhir.diagnostic_report(data))
    reparsed = DiagnosticReport.model_validate_json(text)
    body: dict[str, Any] = json.loads(reparsed.model_dump_json(exclude_none=True))
    assert body == json.loads(text)
    return body


def test_full_report_validates_and_is_loinc_coded() -> None:
    report = _roundtrip(_input(hr_bpm=38.0, hr_source="phone", pr_ms=210.0, qrs_ms=124.0, qt_ms=440.0, qtc_ms=430.0,
                               qtc_formula="Fridericia", rhythm="af"))
    assert report["resourceType"] == "DiagnosticReport" and report["status"] == "preliminary"
    assert report["code"]["coding"][0] == {"system": "http://loinc.org", "code": "11524-6", "display": "EKG study"}
    patient, *observations = report["contained"]
    assert patient == {"resourceType": "Patient", "id": "patient",
                       "identifier": [{"system": fhir.PSEUDONYM_SYSTEM, "value": "p-abc"}]}  # nothing else
    assert report["subject"] == {"reference": "#patient"}
    by_code = {o["code"]["coding"][0]["code"]: o for o in observations}
    assert set(by_code) == {"8867-4", "8625-6", "8633-0", "8634-8", "8636-3", "8884-9"}
    assert [r["reference"] for r in report["result"]] == [f"#{o['id']}" for o in observations]
    hr = by_code["8867-4"]
    assert hr["valueQuantity"] == {"value": 38.0, "unit": "/min", "system": fhir.UCUM, "code": "/min"}
    assert hr["subject"] == {"reference": "#patient"} and hr["effectiveDateTime"].startswith("2025-11-27T12:00")
    qtc = by_code["8636-3"]
    assert qtc["valueQuantity"]["unit"] == "ms" and qtc["method"]["text"] == "QTc Fridericia"
    rhythm = by_code["8884-9"]["valueCodeableConcept"]
    assert rhythm["text"] == "af" and rhythm["coding"][0] == {"system": fhir.SNOMED, "code": "164889003",
                                                            "display": "Atrial fibrillation"}
    assert {o["status"] for o in observations} == {"preliminary"}
    assert "Marked bradycardia" in report["conclusion"] and "Preliminary" in report["conclusion"]
    assert "meta" not in report


def test_missing_values_produce_no_observation() -> None:
    report = _roundtrip(_input())
    assert len(report["contained"]) == 1 and "result" not in report
    assert "No guideline threshold crossed" in report["conclusion"]
    (_, rhythm) = _roundtrip(_input(rhythm="inconclusive"))["contained"]
    assert rhythm["valueCodeableConcept"] == {"text": "inconclusive"}


def test_drill_is_tagged_everywhere() -> None:
    report = _roundtrip(_input(drill=True, hr_bpm=180.0))
    assert report["meta"]["tag"] == [fhir.DRILL_TAG]
    assert report["meta"]["security"][0]["code"] == "HTEST"
    for resource in report["contained"]:
        assert resource["meta"] == {"tag": [fhir.DRILL_TAG]}  # contained: no security labels (dom-5)
    assert report["conclusion"].startswith("[DRILL]")


def test_signed_report_is_final() -> None:
    report = _roundtrip(_input(signed=True, hr_bpm=60.0))
    assert report["status"] == "final" and report["contained"][1]["status"] == "final"
    assert "Preliminary" not in report["conclusion"]


def test_ids_are_legal_fhir_ids() -> None:
    assert fhir.fhir_id("abc-1.2") == "abc-1.2"
    odd = fhir.fhir_id("p_under_score")
    assert odd != "p_under_score" and odd == fhir.fhir_id("p_under_score") and "_" not in odd
    report = _roundtrip(_input(patient="p_under_score"))
    assert report["contained"][0]["identifier"][0]["value"] == "p_under_score"


def test_not_found_is_an_operation_outcome() -> None:
    body = json.loads(fhir.to_json(fhir.not_found("DiagnosticReport 'x' not found")))
    assert body["resourceType"] == "OperationOutcome" and body["issue"][0]["code"] == "not-found"
