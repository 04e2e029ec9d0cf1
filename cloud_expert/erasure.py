"""Erasing one patient from the cloud, or everyone's data past its retention: episodes, report jobs and
reports go, with the edge's telemetry (disclosure strips, heart-rate minutes, devices); an audit row per
patient stays.

The row keeps the pseudonymous id, who erased, when, why and how much, never anything of the person.
The edge's own store is erased by `EdgeStore.erase_patient` (`cardiomesh patient erase --edge-db`);
messages still waiting in a device's outbox are not touched (they are the device's to deliver, and the
next erasure removes what they bring).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, delete, func, select
from sqlalchemy.orm import Session

from cloud_expert.db import (
    DeviceRow,
    Episode,
    Erasure,
    HrMinuteRow,
    Label,
    Report,
    ReportJob,
    ReportReview,
    StripSegment,
)
from shared.messages import new_id, utcnow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Erased:
    audit_id: str
    episodes: int
    reports: int
    jobs: int


def erase_patient(session: Session, patient_id: str, *, by: str, reason: str, now: datetime) -> Erased:
    """Delete every episode, report job and report of `patient_id` and record the erasure; the caller
    commits (all or nothing)."""
    if not by.strip() or not reason.strip():
        raise ValueError("an erasure needs who (by) and why (reason): it is audited")
    for model in (StripSegment, HrMinuteRow, DeviceRow):
        session.execute(delete(model).where(model.patient_id == patient_id))
    return _erase(session, patient_id, Episode.patient_id == patient_id, by=by, reason=reason, now=now)


def apply_retention(session: Session, *, before: datetime, by: str, site: str | None = None) -> list[Erased]:
    """Delete every episode received before `before` (with its report job and report), on one site or all;
    one audit row per patient touched, its reason naming the cut-off. The caller commits."""
    if not by.strip():
        raise ValueError("retention needs who (by): it is audited")
    old = Episode.received_at < before
    where = old if site is None else and_(old, Episode.site == site)
    patients = sorted(session.scalars(select(Episode.patient_id).where(where).distinct()))
    old_minutes = HrMinuteRow.minute < before
    old_segments = StripSegment.received_at < before
    session.execute(delete(HrMinuteRow).where(old_minutes if site is None else and_(old_minutes,
                                                                                   HrMinuteRow.site == site)))
    session.execute(delete(StripSegment).where(old_segments if site is None else and_(old_segments,
                                                                                     StripSegment.site == site)))
    reason = f"retention: received before {before.isoformat(timespec='seconds')}" + (f" on {site}" if site else "")
    return [_erase(session, patient, and_(where, Episode.patient_id == patient), by=by, reason=reason, now=utcnow())
            for patient in patients]


def _erase(session: Session, patient_id: str, where: ColumnElement[bool], *, by: str, reason: str,
           now: datetime) -> Erased:
    ids = select(Episode.id).where(where)
    episodes = int(session.scalar(select(func.count()).select_from(Episode).where(where)) or 0)
    reports = int(session.scalar(select(func.count()).select_from(Report).where(Report.episode_id.in_(ids))) or 0)
    jobs = int(session.scalar(select(func.count()).select_from(ReportJob).where(ReportJob.episode_id.in_(ids))) or 0)
    reports_of = select(Report.id).where(Report.episode_id.in_(ids))
    session.execute(delete(StripSegment).where(StripSegment.alert_id.in_(ids)))
    session.execute(delete(ReportReview).where(ReportReview.report_id.in_(reports_of)))
    session.execute(delete(Label).where(Label.report_id.in_(reports_of)))
    session.execute(delete(Report).where(Report.episode_id.in_(ids)))
    session.execute(delete(ReportJob).where(ReportJob.episode_id.in_(ids)))
    session.execute(delete(Episode).where(where))
    audit = Erasure(id=new_id(), patient_id=patient_id, erased_at=now, erased_by=by.strip()[:128],
                    reason=reason.strip(), episodes=episodes, reports=reports, jobs=jobs)
    session.add(audit)
    log.warning("patient data erased", extra={"patient_id": patient_id, "episodes": episodes, "reports": reports,
                                              "audit_id": audit.id, "reason": reason[:80]})
    return Erased(audit.id, episodes, reports, jobs)
