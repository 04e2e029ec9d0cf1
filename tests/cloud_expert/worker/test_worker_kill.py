"""A worker SIGKILLed in the middle of a report: a second worker finishes it, and there is exactly one report.

Deterministic: the first worker runs with the test-only `CARDIOMESH_TEST_REPORT_DELAY_S`, so it is inside
rendering (job row "running", message unacknowledged) when it is killed. Two recovery paths are checked:
Redis redelivers the unacked task after a short visibility timeout, or the cloud's sweeper re-enqueues the
job that stayed "running" past `report_sweep_s`.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from cloud_expert.db import Report, ReportJob, make_engine, make_session_factory
from cloud_expert.ingest import store_escalation
from cloud_expert.reports.jobs import TEST_DELAY_ENV
from cloud_expert.service import CloudService
from cloud_expert.worker.celery_app import VISIBILITY_TIMEOUT_ENV, make_app
from cloud_expert.worker.enqueue import celery_enqueuer
from shared.messages import utcnow
from shared.settings import Settings
from shared.transport import InMemoryBus
from tests.cloud_expert.factories import make_escalation
from tests.cloud_expert.worker.helpers import celery_worker, wait_for
from tests.integration.faults import record_fault

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@pytest.fixture
def kill_queue(redis_url: str, unique: str) -> Iterator[str]:
    name = f"cm-kill-{unique}"
    yield name
    client = redis.Redis.from_url(redis_url)
    client.delete(name, f"_kombu.binding.{name}")
    client.close()


@pytest.mark.parametrize("recovery", ["redelivery", "sweeper"])
def test_sigkill_mid_report_still_yields_exactly_one_report(
    tmp_path: Path, redis_url: str, kill_queue: str, pg_schema_url: str, unique: str, recovery: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # redelivery: Redis hands the unacked task out again after 3 s; sweeper: an hour, so only the sweeper helps.
    visibility = "3" if recovery == "redelivery" else "3600"
    monkeypatch.setenv(VISIBILITY_TIMEOUT_ENV, visibility)
    settings = Settings(state_dir=tmp_path / "state", site=f"k{unique}", database_url=pg_schema_url,
                        celery_broker_url=redis_url, report_sweep_s=1.0)
    engine = make_engine(pg_schema_url)
    sessions = make_session_factory(engine)
    enqueue = celery_enqueuer(make_app(settings, queue=kill_queue), queue=kill_queue)
    with sessions() as session:
        _, job, _ = store_escalation(session, make_escalation(site=settings.site, patient_id=f"p{unique}"), utcnow())
        session.commit()
        job_id, episode_id = job.id, job.episode_id
    enqueue(job_id)

    def job_row() -> ReportJob:
        with sessions() as session:
            row = session.get(ReportJob, job_id)
            assert row is not None
            return row

    def reports() -> int:
        with sessions() as session:
            return int(session.scalar(select(func.count()).select_from(Report)
                                      .where(Report.episode_id == episode_id)) or 0)

    env = {"CARDIOMESH_CELERY_BROKER_URL": redis_url, "CARDIOMESH_DATABASE_URL": pg_schema_url,
           "CARDIOMESH_STATE_DIR": str(tmp_path / "worker-state"), VISIBILITY_TIMEOUT_ENV: visibility}
    first_log, second_log = tmp_path / "worker-1.log", tmp_path / "worker-2.log"
    try:
        with celery_worker(queue=kill_queue, env={**env, TEST_DELAY_ENV: "60"}, log_path=first_log) as first:
            wait_for(lambda: True if job_row().status == "running" else None, timeout_s=30,
                     what="the first worker to start rendering", log_path=first_log)
            os.kill(first.pid, signal.SIGKILL)
            assert first.wait(timeout=10) == -signal.SIGKILL
        assert job_row().status == "running" and reports() == 0

        if recovery == "sweeper":
            service = CloudService(settings, InMemoryBus().transport("cloud"), enqueue=enqueue, loop_interval_s=None)
            service.start()
            try:
                wait_for(lambda: service.sweep_jobs() or None, timeout_s=10, what="the sweeper to re-enqueue")
            finally:
                service.stop()
            assert job_row().attempts == 2

        with celery_worker(queue=kill_queue, env=env, log_path=second_log):
            wait_for(lambda: True if job_row().status == "done" else None, timeout_s=60,
                     what=f"the second worker to finish the job ({recovery})", log_path=second_log)
        assert reports() == 1
        assert job_row().error is None
        record_fault(f"report worker killed (-9) mid-render, recovered by {recovery}",
                     "a second worker finishes the job: exactly one report",
                     f"reports {reports()}, job {job_row().status} after {job_row().attempts} attempt(s)")
    finally:
        engine.dispose()
