"""store_escalation: one episode + one job per alert however often it arrives, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cloud_expert.db import Episode, Report, ReportJob
from cloud_expert.ingest import INGEST_HOP, clinical_counts, store_escalation
from shared.messages import utcnow
from tests.cloud_expert.factories import make_escalation


def _count(session: Session, model: type) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_store_creates_episode_and_queued_job(sessions: sessionmaker[Session], unique: str) -> None:
    msg = make_escalation(site=f"s{unique}", patient_id=f"p{unique}")
    now = utcnow()
    with sessions() as session:
        episode, job, created = store_escalation(session, msg, now)
        session.commit()
    assert created
    assert episode.id == msg.payload.alert_id
    assert episode.trace_id == msg.trace_id
    assert (episode.site, episode.patient_id, episode.device_id) == (f"s{unique}", f"p{unique}", "watch-1")
    assert (episode.kind, episode.level, episode.drill) == ("tachycardia", "emergency", False)
    assert episode.escalation_message_id == msg.id
    assert episode.analysis_json is not None and episode.analysis_json["payload"]["rhythm"] == "sinus_tachycardia"
    assert [h["name"] for h in episode.hops_json][-1] == INGEST_HOP
    assert job.status == "queued" and job.attempts == 1 and job.episode_id == episode.id
    with sessions() as session:
        stored = session.get(Episode, episode.id)
        assert stored is not None and stored.received_at == now  # timezone-aware round trip


def test_redelivery_and_resend_create_nothing_new(sessions: sessionmaker[Session], unique: str) -> None:
    msg = make_escalation(site=f"s{unique}", patient_id=f"p{unique}")
    resent = msg.model_copy(update={"id": "resent" + unique})  # same alert, new message id
    with sessions() as session:
        first = store_escalation(session, msg, utcnow())
        session.commit()
        again = store_escalation(session, msg, utcnow() + timedelta(seconds=1))
        other = store_escalation(session, resent, utcnow() + timedelta(seconds=2))
        session.commit()
        assert not again[2] and not other[2]
        assert again[0].id == other[0].id == first[0].id
        assert again[1].id == other[1].id == first[1].id
        assert session.scalar(select(func.count()).select_from(Episode).where(Episode.id == msg.payload.alert_id)) == 1
        assert session.scalar(
            select(func.count()).select_from(ReportJob).where(ReportJob.episode_id == msg.payload.alert_id)) == 1


def test_same_message_id_for_another_alert_is_a_duplicate(sessions: sessionmaker[Session], unique: str) -> None:
    msg = make_escalation(site=f"s{unique}", patient_id=f"p{unique}")
    clash = make_escalation(site=f"s{unique}", patient_id=f"p{unique}").model_copy(update={"id": msg.id})
    with sessions() as session:
        assert store_escalation(session, msg, utcnow())[2]
        episode, _, created = store_escalation(session, clash, utcnow())
        session.commit()
    assert not created and episode.id == msg.payload.alert_id


def test_drills_are_marked_and_excluded_from_clinical_counts(sqlite_sessions: sessionmaker[Session]) -> None:
    with sqlite_sessions() as session:
        store_escalation(session, make_escalation(site="s1", patient_id="p1"), utcnow())
        store_escalation(session, make_escalation(site="s1", patient_id="p1", level="urgent"), utcnow())
        drill_episode, _, _ = store_escalation(session, make_escalation(site="s1", patient_id="p1", drill=True),
                                               utcnow())
        session.add(Report(id="r-drill", episode_id=drill_episode.id, html="<p>", drill=True, level="emergency",
                           created_at=utcnow(), rendered_ms=1.0))
        session.commit()
        assert drill_episode.drill is True
        counts = clinical_counts(session)
    assert counts.episodes == 2
    assert counts.by_level == {"emergency": 1, "urgent": 1}
    assert counts.reports == 0


def test_missing_analysis_is_sql_null(sessions: sessionmaker[Session], unique: str) -> None:
    msg = make_escalation(site=f"s{unique}", patient_id=f"p{unique}", with_analysis=False)
    with sessions() as session:
        store_escalation(session, msg, utcnow())
        session.commit()
        found = session.scalar(select(Episode.id).where(Episode.id == msg.payload.alert_id,
                                                        Episode.analysis_json.is_(None)))
    assert found == msg.payload.alert_id
