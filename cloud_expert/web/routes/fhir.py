"""`/fhir/DiagnosticReport/{id}`: the report as a FHIR R4 DiagnosticReport (application/fhir+json).

Errors are FHIR OperationOutcomes with the same media type, as FHIR clients expect.
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from cloud_expert.reports.fhir import FHIR_JSON, diagnostic_report, not_found, to_json
from cloud_expert.web import crud
from cloud_expert.web.deps import SessionDep
from cloud_expert.web.routes.common import ReportId
from cloud_expert.web.routes.reports import viewed
from cloud_expert.web.security import Reader

router = APIRouter(prefix="/fhir", tags=["fhir"])


@router.get("/DiagnosticReport/{report_id}", response_class=Response,
            responses={200: {"content": {FHIR_JSON: {}}}, 404: {"content": {FHIR_JSON: {}}}})
def get_diagnostic_report(request: Request, session: SessionDep, viewer: Reader, report_id: ReportId) -> Response:
    data = crud.get_fhir_input(session=session, report_id=report_id, scope=viewer.scope)
    if data is None:
        return Response(to_json(not_found(f"DiagnosticReport {report_id!r} not found")), status_code=404,
                        media_type=FHIR_JSON)
    viewed(session, request, viewer, report_id, "fhir")
    return Response(to_json(diagnostic_report(data)), media_type=FHIR_JSON)
