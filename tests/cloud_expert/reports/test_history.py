"""load_history and the worker's use of it: the same patient's earlier non-drill episodes only."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from cloud_expert.db import Episode, Report
from cloud_expert.ingest import store_escalation
from cloud_expert.reports.history import load_history
from cloud_expert.reports.jobs import run_report_job
from shared.messages import utcnow
from tests.cloud_expert.factories import make_escalation


def test_history_is_earlier_non_drill_episodes_of_the_same_patient(sessions: sessionmaker[Session],
                                                                   unique: str) -> None:
    t0 = utcnow() - timedelta(days=3)
    patient, site = f"p{unique}", f"s{unique}"
    plan = [  # (days after t0, patient, drill, hr, rhythm)
        (0.0, patient, False, 60.0, "af"), (1.0, patient, False, 64.0, "sinus"), (1.5, patient, True, 30.0, "af"),
        (1.6, f"other{unique}", False, 99.0, "af"), (2.0, patient, False, 38.0, "af"),
        (2.5, patient, False, 70.0, "af"),
    ]
    job_ids: list[str] = []
    with sessions() as session:
        for days, pid, drill, hr, rhythm in plan:
            msg = make_escalation(site=site, patient_id=pid, drill=drill, created_at=t0 + timedelta(days=days),
                                  hr_bpm=hr,
                                  analysis_fields={"hr_bpm": hr, "rhythm": rhythm, "qtc_fridericia_ms": 430.0})
            _, job, _ = store_escalation(session, msg, t0 + timedelta(days=days))
            job_ids.append(job.id)
        session.commit()
        target = session.scalars(select(Episode).where(Episode.received_at == t0 + timedelta(days=2))).one()
        past = load_history(session, target)
    assert [p.hr_bpm for p in past] == [60.0, 64.0]  # no drill, no other patient, nothing later
    assert [p.rhythm for p in past] == ["af", "sinus"] and past[0].qtc_ms == 430.0
    with sessions() as session:  # a drill of that patient: never their clinical history beside the rehearsal
        rehearsal = session.scalars(select(Episode).where(Episode.received_at == t0 + timedelta(days=1.5))).one()
        assert load_history(session, rehearsal) == []

    assert run_report_job(sessions, job_ids[4], now=utcnow) == "done"
    with sessions() as session:
        report = session.scalars(select(Report).where(Report.episode_id == target.id)).one()
        assessment = report.assessment_json or {}
        pdf = report.pdf
    assert assessment["history"]["n_episodes"] == 2 and assessment["history"]["baseline_hr_bpm"] == 62.0
    # the report reads its own strip again (ADR 0010): the factory's strip is a regular tachycardia, so the
    # phone's "af" is a contradiction shown beside the reading, and the rhythm is the re-analysis's
    assert assessment["measurements"]["reading_source"].startswith("strip re-analysis")
    assert assessment["measurements"]["phone_rhythm"] == "af"
    assert any("The phone read af" in c for c in assessment["measurements"]["contradictions"])
    assert any("HR 38 bpm vs this patient's baseline 62 bpm" in line for line in assessment["care_plan"])
    assert report.severity == "high" and report.signed_at is None and report.signed_by is None
    assert pdf is not None and pdf.startswith(b"%PDF-")
    assert "HR 38 bpm vs this patient&#39;s baseline 62 bpm" in report.html


def test_first_episode_has_no_history(sqlite_sessions: sessionmaker[Session], unique: str) -> None:
    with sqlite_sessions() as session:
        episode, _, _ = store_escalation(session, make_escalation(site="s", patient_id=f"p{unique}"), utcnow())
        session.commit()
        assert load_history(session, episode) == []
