"""run_report_job: renders once, is idempotent, records failures on the job row."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cloud_expert.db import Report, ReportJob
from cloud_expert.ingest import store_escalation
from cloud_expert.reports import jobs
from shared.messages import utcnow
from tests.cloud_expert.factories import make_escalation


def _job(sessions: sessionmaker[Session], unique: str, *, drill: bool = False) -> str:
    with sessions() as session:
        _, job, _ = store_escalation(session, make_escalation(site=f"s{unique}", patient_id=f"p{unique}",
                                                              drill=drill), utcnow())
        session.commit()
        return job.id


def test_renders_once_and_marks_done(sessions: sessionmaker[Session], unique: str) -> None:
    job_id = _job(sessions, unique, drill=True)
    assert jobs.run_report_job(sessions, job_id, now=utcnow) == "done"
    assert jobs.run_report_job(sessions, job_id, now=utcnow) == "already_done"
    with sessions() as session:
        job = session.get(ReportJob, job_id)
        assert job is not None and job.status == "done" and job.finished_at is not None and not job.announced
        reports = session.scalars(select(Report).where(Report.episode_id == job.episode_id)).all()
        assert len(reports) == 1
        assert reports[0].drill is True and "DRILL" in reports[0].html and reports[0].rendered_ms > 0


def test_rerun_of_a_requeued_job_with_a_report_adds_none(sessions: sessionmaker[Session], unique: str) -> None:
    job_id = _job(sessions, unique)
    assert jobs.run_report_job(sessions, job_id, now=utcnow) == "done"
    with sessions() as session:
        job = session.get(ReportJob, job_id)
        assert job is not None
        job.status = "queued"  # as the sweeper would after a lost ack
        session.commit()
        episode_id = job.episode_id
    assert jobs.run_report_job(sessions, job_id, now=utcnow) == "already_done"
    with sessions() as session:
        count = session.scalar(select(func.count()).select_from(Report).where(Report.episode_id == episode_id))
        assert count == 1


def test_missing_job(sqlite_sessions: sessionmaker[Session]) -> None:
    assert jobs.run_report_job(sqlite_sessions, "no-such-job", now=utcnow) == "missing"


def test_rendering_error_is_recorded(sqlite_sessions: sessionmaker[Session], unique: str,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    job_id = _job(sqlite_sessions, unique)

    def broken(_data: object) -> str:
        raise KeyError("template bug")

    monkeypatch.setattr(jobs, "render_report", broken)
    assert jobs.run_report_job(sqlite_sessions, job_id, now=utcnow) == "failed"
    with sqlite_sessions() as session:
        job = session.get(ReportJob, job_id)
        assert job is not None and job.status == "failed" and "template bug" in (job.error or "")
