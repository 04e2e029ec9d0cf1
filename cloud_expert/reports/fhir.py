"""FHIR R4 export of a report (fhir.resources R4B models: constructing them validates the structure).

Shape: one `DiagnosticReport` with its `Patient` and `Observation`s *contained*, because the URL it is
served at (`GET /fhir/DiagnosticReport/{id}`) must return a DiagnosticReport, and this cloud has no
Patient/Observation endpoints that separate references could resolve against. The Patient carries only
the pseudonymous id (no name, birth date or address). Status is `preliminary` until a clinician signs.
Drill reports carry a `meta.tag` (CardioMesh `drill`) and the HL7 `HTEST` (test health data) security label.
Values that were not measured produce no Observation.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fhir.resources.R4B.diagnosticreport import DiagnosticReport
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.patient import Patient

FHIR_JSON = "application/fhir+json"
LOINC = "http://loinc.org"
SNOMED = "http://snomed.info/sct"
UCUM = "http://unitsofmeasure.org"
PSEUDONYM_SYSTEM = "urn:cardiomesh:pseudonym"
REPORT_SYSTEM = "urn:cardiomesh:report"
TRACE_SYSTEM = "urn:cardiomesh:trace"
FLAG_SYSTEM = "https://cardiomesh.example/fhir/CodeSystem/episode-flags"
DRILL_TAG = {"system": FLAG_SYSTEM, "code": "drill", "display": "Drill: not a real patient event"}
TEST_DATA_LABEL = {"system": "http://terminology.hl7.org/CodeSystem/v3-ActReason", "code": "HTEST",
                   "display": "test health data"}
REPORT_CODE = {"coding": [{"system": LOINC, "code": "11524-6", "display": "EKG study"}], "text": "ECG episode report"}
REPORT_CATEGORY = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "EC",
                               "display": "Electrocardiac"}]}


def _category(code: str) -> list[dict[str, Any]]:
    return [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": code}]}]


#: (measurement key, contained id, LOINC code, LOINC display, UCUM unit, category)
QUANTITIES: tuple[tuple[str, str, str, str, str, str], ...] = (
    ("hr_bpm", "hr", "8867-4", "Heart rate", "/min", "vital-signs"),
    ("pr_ms", "pr", "8625-6", "P-R Interval", "ms", "procedure"),
    ("qrs_ms", "qrs", "8633-0", "QRS duration", "ms", "procedure"),
    ("qt_ms", "qt", "8634-8", "Q-T interval", "ms", "procedure"),
    ("qtc_ms", "qtc", "8636-3", "Q-T interval corrected", "ms", "procedure"),
)
RHYTHM_LOINC = ("8884-9", "Heart rate rhythm")
#: Phone rhythm vocabulary → SNOMED CT ECG-finding codes (as in the PhysioNet/CinC 2020-21 label map); others: text.
RHYTHM_SNOMED: dict[str, tuple[str, str]] = {
    "sinus": ("426783006", "Sinus rhythm"),
    "sinus_tachycardia": ("427084000", "Sinus tachycardia"),
    "sinus_bradycardia": ("426177001", "Sinus bradycardia"),
    "af": ("164889003", "Atrial fibrillation"),
    "afl": ("164890007", "Atrial flutter"),
    "svt": ("426761007", "Supraventricular tachycardia"),
    "vt": ("164895002", "Ventricular tachycardia"),
    "vf": ("164896001", "Ventricular fibrillation"),
}
_FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")


@dataclass(frozen=True, slots=True)
class FhirInput:
    """A stored report as the export needs it (from the `reports` and `episodes` rows)."""

    report_id: str
    patient_id: str
    trace_id: str
    drill: bool
    effective_at: datetime
    issued_at: datetime
    assessment: dict[str, Any]
    signed_at: datetime | None = None
    review_status: str = "preliminary"
    review_reason: str | None = None
    signed_by: str | None = None


#: a report's review status → DiagnosticReport.status (a rejected automated report is entered-in-error:
#: its content is not the clinician's)
FHIR_STATUS = {"preliminary": "preliminary", "final": "final", "amended": "amended", "rejected": "entered-in-error"}


def fhir_id(value: str) -> str:
    """`value` when it is a legal FHIR id, else a stable UUIDv5 of it (pseudonyms may hold '_')."""
    return value if _FHIR_ID.match(value) else str(uuid.uuid5(uuid.NAMESPACE_URL, f"urn:cardiomesh:{value}"))


def _quantity_obs(key: str, rid: str, code: str, display: str, unit: str, category: str, value: float,
                  common: dict[str, Any], method: str | None) -> Observation:
    body: dict[str, Any] = {
        **common, "id": rid, "category": _category(category),
        "code": {"coding": [{"system": LOINC, "code": code, "display": display}], "text": display},
        "valueQuantity": {"value": round(float(value), 1), "unit": unit, "system": UCUM, "code": unit},
    }
    if method:
        body["method"] = {"text": method}
    return Observation(**body)


def diagnostic_report(data: FhirInput) -> DiagnosticReport:
    """The validated DiagnosticReport of one report, with the pseudonymous Patient and Observations contained."""
    # signed with no review status (a row signed before sign-off had one): final
    reviewed = "final" if data.review_status == "preliminary" else data.review_status
    status = FHIR_STATUS.get(reviewed, "final") if data.signed_at is not None else "preliminary"
    meta: dict[str, Any] = {"tag": [DRILL_TAG], "security": [TEST_DATA_LABEL]} if data.drill else {}
    m: dict[str, Any] = data.assessment.get("measurements") or {}
    common = {"status": status, "subject": {"reference": "#patient"},
              "effectiveDateTime": data.effective_at.isoformat()}
    if data.drill:
        common["meta"] = {"tag": [DRILL_TAG]}  # contained resources may not carry security labels (dom-5)
    contained: list[Any] = [Patient(id="patient", identifier=[{"system": PSEUDONYM_SYSTEM, "value": data.patient_id}],
                                    **({"meta": {"tag": [DRILL_TAG]}} if data.drill else {}))]
    for key, rid, code, display, unit, category in QUANTITIES:
        if m.get(key) is not None:
            method = f"QTc {m.get('qtc_formula')}" if key == "qtc_ms" and m.get("qtc_formula") else None
            contained.append(_quantity_obs(key, rid, code, display, unit, category, m[key], common, method))
    rhythm = m.get("rhythm")
    if rhythm:
        concept: dict[str, Any] = {"text": str(rhythm).replace("_", " ")}
        if rhythm in RHYTHM_SNOMED:
            sct, sct_display = RHYTHM_SNOMED[rhythm]
            concept["coding"] = [{"system": SNOMED, "code": sct, "display": sct_display}]
        contained.append(Observation(**common, id="rhythm", category=_category("procedure"),
                                     code={"coding": [{"system": LOINC, "code": RHYTHM_LOINC[0],
                                                       "display": RHYTHM_LOINC[1]}], "text": RHYTHM_LOINC[1]},
                                     valueCodeableConcept=concept))
    findings = data.assessment.get("findings") or []
    severity = data.assessment.get("severity", "normal")
    conclusion = f"{'[DRILL] ' if data.drill else ''}Automated assessment: {severity}. " + (
        "; ".join(f"{f['title']} ({f['severity']})" for f in findings) or "No guideline threshold crossed.")
    if status == "preliminary":
        conclusion += " Preliminary: requires clinician review."
    elif status == "amended":
        conclusion += f" Amended by {data.signed_by}: {data.review_reason}."
    elif status == "entered-in-error":
        conclusion += f" Rejected by {data.signed_by}: {data.review_reason}."
    return DiagnosticReport(
        id=fhir_id(data.report_id), meta=meta or None, status=status, category=[REPORT_CATEGORY], code=REPORT_CODE,
        identifier=[{"system": REPORT_SYSTEM, "value": data.report_id},
                    {"system": TRACE_SYSTEM, "value": data.trace_id}],
        subject={"reference": "#patient"}, effectiveDateTime=data.effective_at.isoformat(),
        issued=data.issued_at.isoformat(), contained=contained,
        result=[{"reference": f"#{obs.id}", "display": obs.code.text} for obs in contained[1:]],
        conclusion=conclusion,
    )


def to_json(resource: DiagnosticReport | OperationOutcome) -> str:
    return resource.model_dump_json(exclude_none=True)


def not_found(what: str) -> OperationOutcome:
    """The FHIR way to say 404."""
    return OperationOutcome(issue=[{"severity": "error", "code": "not-found", "diagnostics": what}])
