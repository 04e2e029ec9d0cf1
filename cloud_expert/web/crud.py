"""Read queries behind the routes (keyword-only), so handlers hold no query code."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session

from cloud_expert.db import Episode, Report, ReportJob
from cloud_expert.reports.fhir import FhirInput
from cloud_expert.scope import Scope, scoped
from cloud_expert.web.schemas import AlertPublic, ReportPublic


def report_url(report_id: str) -> str:
    return f"/reports/{report_id}"


def pdf_url(report_id: str) -> str:
    return f"/reports/{report_id}.pdf"


def fhir_url(report_id: str) -> str:
    return f"/fhir/DiagnosticReport/{report_id}"


def list_alerts(*, session: Session, limit: int, include_drills: bool, scope: Scope) -> list[AlertPublic]:
    stmt = (
        select(Episode, ReportJob.status, Report.id)
        .outerjoin(ReportJob, ReportJob.episode_id == Episode.id)
        .outerjoin(Report, Report.episode_id == Episode.id)
        .order_by(Episode.received_at.desc(), Episode.id)
        .limit(limit)
    )
    if not include_drills:
        stmt = stmt.where(Episode.drill.is_(False))
    stmt = scoped(stmt, scope)
    return [
        AlertPublic(alert_id=e.id, trace_id=e.trace_id, site=e.site, patient_id=e.patient_id, device_id=e.device_id,
                    kind=e.kind, level=e.level, drill=e.drill, received_at=e.received_at, report_status=status,
                    report_id=rid, report_url=report_url(rid) if rid else None)
        for e, status, rid in session.execute(stmt).all()
    ]


def _public(report: Report, episode: Episode) -> ReportPublic:
    return ReportPublic(report_id=report.id, alert_id=episode.id, trace_id=episode.trace_id, site=episode.site,
                        patient_id=episode.patient_id, kind=episode.kind, level=report.level, drill=report.drill,
                        created_at=report.created_at, rendered_ms=report.rendered_ms, url=report_url(report.id),
                        pdf_url=pdf_url(report.id) if report.severity is not None else None,
                        fhir_url=fhir_url(report.id), severity=report.severity,
                        status=report.review_status, signed_at=report.signed_at,
                        signed_by=report.signed_by)


def list_reports(*, session: Session, limit: int, include_drills: bool, scope: Scope) -> list[ReportPublic]:
    stmt = (select(Report, Episode).join(Episode, Report.episode_id == Episode.id)
            .order_by(Report.created_at.desc(), Report.id).limit(limit))
    if not include_drills:
        stmt = stmt.where(Report.drill.is_(False))
    return [_public(r, e) for r, e in session.execute(scoped(stmt, scope)).all()]


def _one(report_id: str, scope: Scope, *columns: Any) -> Select[*tuple[Any, ...]]:
    """One report by id, within what the user may see: outside it, a report does not exist (404, not 403)."""
    return scoped(select(*columns).join(Episode, Report.episode_id == Episode.id).where(Report.id == report_id),
                   scope)


def get_report(*, session: Session, report_id: str, scope: Scope) -> ReportPublic | None:
    row = session.execute(_one(report_id, scope, Report, Episode)).first()
    return _public(row[0], row[1]) if row else None


def get_report_html(*, session: Session, report_id: str, scope: Scope) -> str | None:
    return session.scalar(_one(report_id, scope, Report.html))


def get_report_pdf(*, session: Session, report_id: str, scope: Scope) -> bytes | None:
    """The stored PDF; None when there is no such report (for this user) or it predates PDFs (migration 0002)."""
    return session.scalar(_one(report_id, scope, Report.pdf))


def get_fhir_input(*, session: Session, report_id: str, scope: Scope) -> FhirInput | None:
    row = session.execute(_one(report_id, scope, Report, Episode)).first()
    if row is None:
        return None
    report, episode = row
    alert_time = (episode.alert_json or {}).get("created_at")
    effective = datetime.fromisoformat(alert_time) if isinstance(alert_time, str) else episode.received_at
    return FhirInput(report_id=report.id, patient_id=episode.patient_id, trace_id=episode.trace_id,
                     drill=report.drill, effective_at=effective, issued_at=report.created_at,
                     assessment=report.assessment_json or {}, signed_at=report.signed_at,
                     review_status=report.review_status, review_reason=report.review_reason,
                     signed_by=report.signed_by)
