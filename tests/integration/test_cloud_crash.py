"""The cloud ingest killed (os._exit) right after it stored an escalation, before it queued the report or acked
the message, with more escalations arriving while it is down: as real processes (Mosquitto with the cloud's
persistent session, PostgreSQL, Redis, a Celery worker). Every escalation ends as one episode, one job and one
report: the broker redelivers what was not acked, the database's keys make the redelivery a no-op, and the
sweeper queues the job the dead process never did."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from cloud_expert.db import Episode, Report, ReportJob, make_engine, make_session_factory
from shared import topics
from shared.faults import CRASH_STATUS
from shared.messages import encode
from shared.transport import MqttTransport
from tests.cloud_expert.factories import make_escalation
from tests.cloud_expert.worker.helpers import celery_worker, wait_for
from tests.integration.faults import record_fault
from tests.integration.processes import Component
from tests.integration.test_offline_watch import _broker, _free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow]
LATER = 4  # escalations sent while the cloud is down


@pytest.fixture
def report_queue(redis_url: str, unique: str) -> Iterator[str]:
    name = f"cm-cloud-crash-{unique}"
    yield name
    client = redis.Redis.from_url(redis_url)
    client.delete(name, f"_kombu.binding.{name}")
    client.close()


def test_a_cloud_killed_after_storing_loses_and_doubles_nothing(
        tmp_path: Path, redis_url: str, pg_schema_url: str, report_queue: str, unique: str) -> None:
    port = _free_port()
    broker: subprocess.Popen[bytes] = _broker(tmp_path, port)
    site = f"c{unique}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CARDIOMESH_")},
           "CARDIOMESH_MQTT_URL": f"mqtt://127.0.0.1:{port}", "CARDIOMESH_SITE": site,
           "CARDIOMESH_DATABASE_URL": pg_schema_url, "CARDIOMESH_CELERY_BROKER_URL": redis_url,
           "CARDIOMESH_CELERY_QUEUE": report_queue, "CARDIOMESH_REPORT_SWEEP_S": "2",
           "CARDIOMESH_STATE_DIR": str(tmp_path / "cloud"), "CARDIOMESH_LOG_LEVEL": "WARNING"}
    cloud = Component(["cloud"], env, ready="cloud ingest on")
    edge = MqttTransport(client_id=f"edge-{unique}", port=port, clean_session=True)
    engine = make_engine(pg_schema_url)
    sessions = make_session_factory(engine)

    def count(model: type, ids: list[str]) -> int:
        column = Episode.id if model is Episode else model.episode_id  # type: ignore[attr-defined]
        with sessions() as session:
            return int(session.scalar(select(func.count()).select_from(model).where(column.in_(ids))) or 0)

    escalations = [make_escalation(site=site, patient_id=f"p{unique}", edge_id="edge-1") for _ in range(1 + LATER)]
    ids = [e.payload.alert_id for e in escalations]
    topic = topics.escalation(site, f"p{unique}", "edge-1")
    try:
        edge.start(wait_s=5)
        cloud.start(crash_at="cloud_after_store")
        edge.publish(topic, encode(escalations[0]))
        assert cloud.wait_exit(20) == CRASH_STATUS, "".join(cloud.output)
        assert count(Episode, ids[:1]) == 1 and count(Report, ids[:1]) == 0  # stored; nothing queued, nothing acked
        for escalation in escalations[1:]:  # the cloud is down: its persistent session queues these
            edge.publish(topic, encode(escalation))
        with celery_worker(queue=report_queue, env={k: v for k, v in env.items() if k.startswith("CARDIOMESH_")},
                           log_path=tmp_path / "worker.log"):
            cloud.start()
            wait_for(lambda: True if count(Report, ids) == len(ids) else None, timeout_s=90,
                     what="a report for every escalation", log_path=tmp_path / "worker.log")
            observed = (f"episodes {count(Episode, ids)}, jobs {count(ReportJob, ids)}, reports {count(Report, ids)} "
                        f"of {len(ids)} escalations")
            record_fault(f"cloud killed after storing an escalation, {LATER} more sent while it was down",
                         "every escalation: one episode, one job, one report", observed)
            assert [count(m, ids) for m in (Episode, ReportJob, Report)] == [len(ids)] * 3, observed
    finally:
        cloud.stop()
        edge.stop()
        engine.dispose()
        broker.terminate()
        broker.wait(timeout=10)
