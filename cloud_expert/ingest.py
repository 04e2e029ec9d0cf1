"""Storing escalations: one episode and one report job per alert, however often it is delivered.

MQTT QoS 1 is at-least-once and an edge hub may re-send an escalation under a new message id, so
`store_escalation` dedupes on both the alert id and the message id. Races between two ingest processes
are settled by the unique constraints (`INSERT … ON CONFLICT DO NOTHING`), never by an exception.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from cloud_expert.db.models import Episode, Report, ReportJob
from cloud_expert.db.upsert import insert_ignoring_conflicts
from shared.messages import EscalationMessage, Hop, new_id

log = logging.getLogger(__name__)

#: Name of the hop the cloud adds when it has stored an escalation.
INGEST_HOP = "cloud_ingest"


def _find(session: Session, msg: EscalationMessage) -> Episode | None:
    return session.scalars(
        select(Episode).where(
            or_(Episode.id == msg.payload.alert_id, Episode.escalation_message_id == msg.id)
        )
    ).first()


def _existing(session: Session, episode: Episode) -> tuple[Episode, ReportJob, bool]:
    job = session.scalars(select(ReportJob).where(ReportJob.episode_id == episode.id)).one()
    return episode, job, False


def store_escalation(
    session: Session, msg: EscalationMessage, now: datetime, *, service_id: str = "cloud"
) -> tuple[Episode, ReportJob, bool]:
    """Store an escalation as (episode, queued report job); `created` is False for a duplicate.

    The ingest hop is appended to the episode's hops. The caller commits, then enqueues `job.id`.
    """
    found = _find(session, msg)
    if found is not None:
        return _existing(session, found)
    payload = msg.payload
    hops = [*payload.hops, Hop(name=INGEST_HOP, source=service_id, at=now)]
    inserted = insert_ignoring_conflicts(session, Episode, {
        "id": payload.alert_id,
        "trace_id": msg.trace_id,
        "site": payload.site,
        "patient_id": msg.patient_id or payload.alert.patient_id or "unknown",
        "device_id": payload.alert.source,
        "kind": payload.alert.payload.kind,
        "level": payload.level,
        "drill": msg.drill,
        "received_at": now,
        "alert_json": payload.alert.model_dump(mode="json", by_alias=True),
        "analysis_json": payload.analysis.model_dump(mode="json", by_alias=True) if payload.analysis else None,
        "triage_json": payload.triage.model_dump(mode="json"),
        "hops_json": [hop.model_dump(mode="json") for hop in hops],
        "escalation_message_id": msg.id,
    })
    if inserted:
        insert_ignoring_conflicts(session, ReportJob, {
            "id": new_id(), "episode_id": payload.alert_id, "status": "queued", "attempts": 1,
            "enqueued_at": now, "started_at": None, "finished_at": None, "error": None, "announced": False,
        })
    episode = _find(session, msg)
    if episode is None:  # pragma: no cover - only if a concurrent writer deleted it in between
        raise RuntimeError(f"episode {payload.alert_id} vanished while storing it")
    episode_out, job, _ = _existing(session, episode)
    if inserted:
        log.info("escalation stored", extra={"trace_id": msg.trace_id, "alert_id": payload.alert_id,
                                              "drill": msg.drill, "level": payload.level})
    return episode_out, job, inserted


@dataclass(frozen=True, slots=True)
class ClinicalCounts:
    """Figures that clinicians and reports may quote: drills are never part of them."""

    episodes: int
    by_level: dict[str, int]
    reports: int


def clinical_counts(session: Session) -> ClinicalCounts:
    """Episode and report counts excluding drills (drills exercise the path, they are not patients)."""
    rows = session.execute(
        select(Episode.level, func.count()).where(Episode.drill.is_(False)).group_by(Episode.level)
    ).all()
    by_level = {str(level): int(count) for level, count in rows}
    reports = session.scalar(select(func.count()).select_from(Report).where(Report.drill.is_(False))) or 0
    return ClinicalCounts(episodes=sum(by_level.values()), by_level=by_level, reports=int(reports))
