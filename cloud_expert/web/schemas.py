"""Response shapes of the API, separate from the DB models (the report HTML and raw JSON never leak here)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field


class AlertPublic(BaseModel):
    alert_id: str
    trace_id: str
    site: str
    patient_id: str = Field(description="Pseudonymous patient id")
    device_id: str
    kind: str
    level: str
    drill: bool
    received_at: datetime
    report_status: str | None = Field(description="queued | running | done | failed")
    report_id: str | None
    report_url: str | None


class ReportPublic(BaseModel):
    report_id: str
    alert_id: str
    trace_id: str
    site: str
    patient_id: str
    kind: str
    level: str
    drill: bool
    created_at: datetime
    rendered_ms: float
    url: str = Field(description="The HTML report")
    pdf_url: str | None = Field(description="The PDF report (None for reports rendered before PDFs existed)")
    fhir_url: str = Field(description="FHIR R4 DiagnosticReport (application/fhir+json)")
    severity: str | None = Field(description="Automated assessment: normal | info | moderate | high | critical")
    status: str = Field(description="preliminary until a clinician signs; then final, amended or rejected")
    signed_at: datetime | None
    signed_by: str | None


class Health(BaseModel):
    status: str
    database: str


class AuditPublic(BaseModel):
    id: int
    at: datetime
    username: str | None = Field(description="Who; none for a failed sign-in or a CLI act")
    action: str
    target: str | None = Field(description="A report id, pseudonymous patient id or username")
    detail: str | None
    client: str | None = Field(description="The client's address")


class ReviewIn(BaseModel):
    """A sign-off act: the report's new state and the clinician's verdict on the alert."""

    action: Literal["sign", "amend", "reject"]
    reason: str | None = Field(None, max_length=2000, description="Required to amend or reject")
    verdict: Literal["true_alarm", "false_alarm", "uncertain"] | None = Field(
        None, description="The alert was right, wrong, or cannot be told; becomes a training label (never drills)")
    rhythm: str | None = Field(None, max_length=32, description="The rhythm the clinician read, when it differs")
