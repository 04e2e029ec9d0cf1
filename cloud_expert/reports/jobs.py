"""Running one report job: the domain code behind the Celery task, idempotent by job id.

A job may be delivered more than once (acks_late, the sweeper, a redelivered escalation): a finished
job returns at once, and the unique report-per-episode constraint makes a concurrent second run harmless.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from cloud_expert.db.models import Episode, Report, ReportJob
from cloud_expert.db.upsert import insert_ignoring_conflicts
from cloud_expert.reports.history import load_history
from cloud_expert.reports.render import ReportInput, render_report
from shared.messages import new_id

log = logging.getLogger(__name__)

#: Errors worth retrying: the DB was unreachable, locked or dropped the connection. Bugs are not retried.
TRANSIENT_DB_ERRORS: tuple[type[Exception], ...] = (OperationalError,)

JobOutcome = Literal["done", "already_done", "missing", "failed"]

#: TEST-ONLY: seconds to sleep inside rendering, so an integration test can SIGKILL a worker mid-report.
TEST_DELAY_ENV = "CARDIOMESH_TEST_REPORT_DELAY_S"


def _test_delay(extra: dict[str, str]) -> None:
    delay = float(os.environ.get(TEST_DELAY_ENV) or 0)
    if delay > 0:
        log.warning("test-only report delay", extra={**extra, "delay_s": delay})
        time.sleep(delay)


def report_input(session: Session, episode: Episode, *, report_id: str, created_at: datetime) -> ReportInput:
    """The episode as plain data, with the patient's earlier non-drill episodes (the rules compare against them)."""
    return ReportInput.from_json(
        report_id=report_id, site=episode.site, patient_id=episode.patient_id, level=episode.level,
        drill=episode.drill, trace_id=episode.trace_id, alert_json=episode.alert_json,
        analysis_json=episode.analysis_json, triage_json=episode.triage_json, hops_json=episode.hops_json,
        created_at=created_at, history=tuple(load_history(session, episode)),
    )


def _finish(session: Session, job: ReportJob, now: datetime) -> None:
    job.status, job.finished_at, job.error = "done", now, None
    session.commit()


def run_report_job(sessions: sessionmaker[Session], job_id: str, *, now: Callable[[], datetime]) -> JobOutcome:
    """Render and store the report of `job_id` unless that is done already; the job row records the result."""
    with sessions() as session:
        job = session.get(ReportJob, job_id)
        if job is None:
            log.warning("report job not found", extra={"job_id": job_id})
            return "missing"
        episode = job.episode
        extra = {"trace_id": episode.trace_id, "job_id": job_id, "alert_id": episode.id}
        if job.status == "done":
            return "already_done"
        if session.scalar(select(Report.id).where(Report.episode_id == episode.id)) is not None:
            _finish(session, job, now())
            return "already_done"
        job.status, job.started_at = "running", now()
        session.commit()
        report_id, created_at = new_id(), now()
        started = time.perf_counter()
        try:
            data = report_input(session, episode, report_id=report_id, created_at=created_at)
            session.commit()  # end the read transaction: rendering holds no DB snapshot or lock
            _test_delay(extra)
            rendered = render_report(data)
        except Exception as exc:  # a rendering bug: record it on the job (the sweeper retries a few times)
            job.status, job.finished_at, job.error = "failed", now(), f"{type(exc).__name__}: {exc}"[:2000]
            session.commit()
            log.exception("report rendering failed", extra=extra)
            return "failed"
        rendered_ms = (time.perf_counter() - started) * 1000.0
        inserted = insert_ignoring_conflicts(session, Report, {
            "id": report_id, "episode_id": episode.id, "html": rendered.html, "drill": episode.drill,
            "level": episode.level, "created_at": created_at, "rendered_ms": rendered_ms, "pdf": rendered.pdf,
            "assessment_json": rendered.assessment_json, "severity": rendered.severity,
            "signed_at": None, "signed_by": None,
        })
        _finish(session, job, now())
        log.info("report stored" if inserted else "report existed already",
                 extra={**extra, "report_id": report_id, "rendered_ms": round(rendered_ms, 1),
                        "severity": rendered.severity})
        return "done" if inserted else "already_done"
