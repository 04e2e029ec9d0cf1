"""End to end through real processes: Mosquitto → CloudService → Redis → Celery worker → PostgreSQL → bus.

And the single-machine default: filesystem broker + SQLite, no Redis, with a real worker subprocess.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cloud_expert.db import Report, ReportJob, make_engine, make_session_factory
from cloud_expert.service import CloudService
from cloud_expert.worker.celery_app import make_app
from cloud_expert.worker.enqueue import celery_enqueuer
from shared import topics
from shared.messages import EscalationMessage, ReportMessage, decode, encode, new_id
from shared.settings import Settings
from shared.transport import InMemoryBus, MqttTransport
from tests.cloud_expert.factories import make_escalation
from tests.cloud_expert.worker.helpers import celery_worker, wait_for

pytestmark = [pytest.mark.slow]


def _report_count(sessions: sessionmaker[Session], alert_id: str) -> int:
    with sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Report).where(Report.episode_id == alert_id)) or 0)


@pytest.fixture
def redis_queue(redis_url: str, unique: str) -> Iterator[str]:
    """A private Celery queue on the real Redis, deleted afterwards."""
    name = f"cm-test-{unique}"
    yield name
    client = redis.Redis.from_url(redis_url)
    client.delete(name, f"_kombu.binding.{name}", f"_kombu.binding_permanent.{name}")
    for key in ("_kombu.binding.celery.pidbox", "_kombu.binding.reply.celery.pidbox"):
        for member in client.smembers(key):
            if name.encode() in member:
                client.srem(key, member)
    client.close()


@pytest.mark.integration
def test_escalation_over_mqtt_becomes_one_report_via_redis_worker_and_postgresql(
    tmp_path: Path, mosquitto: tuple[str, int], redis_url: str, redis_queue: str, pg_schema_url: str,
    unique: str,
) -> None:
    host, port = mosquitto
    site, patient = f"it{unique}", f"p{unique}"
    settings = Settings(state_dir=tmp_path / "state", site=site, database_url=pg_schema_url,
                        celery_broker_url=redis_url, mqtt_url=f"mqtt://{host}:{port}")
    worker_log = tmp_path / "worker.log"
    received: queue.Queue[ReportMessage] = queue.Queue()

    def on_report(_topic: str, raw: bytes) -> None:
        message = decode(raw, max_bytes=settings.max_payload_bytes)
        assert isinstance(message, ReportMessage)
        received.put(message)

    cloud_transport = MqttTransport(client_id=f"cloud-{unique}", host=host, port=port, clean_session=True)
    edge = MqttTransport(client_id=f"edge-{unique}", host=host, port=port, clean_session=True)
    listener = MqttTransport(client_id=f"listen-{unique}", host=host, port=port, clean_session=True)
    listener.subscribe(topics.report(site, topics.ANY, "cloud"), on_report)
    service = CloudService(settings, cloud_transport, ingest_group=f"cloud-ingest-{unique}",
                           enqueue=celery_enqueuer(make_app(settings, queue=redis_queue), queue=redis_queue))
    worker_env = {"CARDIOMESH_CELERY_BROKER_URL": redis_url, "CARDIOMESH_DATABASE_URL": pg_schema_url,
                  "CARDIOMESH_STATE_DIR": str(tmp_path / "worker-state")}
    with celery_worker(queue=redis_queue, env=worker_env, log_path=worker_log):
        listener.start(wait_s=5)
        edge.start(wait_s=5)
        service.start()
        try:
            msg: EscalationMessage = make_escalation(site=site, patient_id=patient, edge_id="edge-1")
            topic = topics.escalation(site, patient, "edge-1")

            def subscribed() -> bool | None:
                """Connected is not yet subscribed: send garbage until the service has rejected one."""
                if service.counters.get("rejected.not_json"):
                    return True
                edge.publish(topic, b"probe")
                return None

            wait_for(subscribed, timeout_s=10, what="the cloud's subscription to take effect")
            edge.publish(topic, encode(msg), qos=1)

            report = wait_for(lambda: received.get(timeout=0.2) if not received.empty() else None,
                              timeout_s=45, what="the ReportMessage", log_path=worker_log)
            assert report.trace_id == msg.trace_id and report.drill is False
            assert report.payload.alert_id == msg.payload.alert_id
            assert [h.name for h in report.payload.hops][-2:] == ["cloud_ingest", "report_rendered"]
            assert _report_count(service.sessions, msg.payload.alert_id) == 1

            edge.publish(topic, encode(msg), qos=1)  # redelivery
            edge.publish(topic, encode(msg.model_copy(update={"id": new_id()})), qos=1)  # re-send, new id
            wait_for(lambda: True if service.counters.get("duplicates") == 2 else None, timeout_s=10,
                     what="both duplicates to be seen")
            service.tick()
            assert _report_count(service.sessions, msg.payload.alert_id) == 1
            assert received.empty(), "a duplicate escalation must not announce a second report"
            assert service.counters.get("stored") == 1
        finally:
            service.stop()
            edge.stop()
            listener.stop()


def test_filesystem_broker_and_sqlite_need_no_redis(tmp_path: Path, unique: str) -> None:
    """The demo's default: no broker URL → kombu filesystem queue under state_dir; SQLite DB there too."""
    state = tmp_path / "state"
    settings = Settings(state_dir=state, site=f"fs{unique}")
    assert settings.celery_broker_url is None
    q = f"fs-{unique}"
    app = make_app(settings, queue=q)
    assert app.conf.broker_url.startswith("filesystem://")
    bus = InMemoryBus()
    enqueue = celery_enqueuer(app, queue=q)
    service = CloudService(settings, bus.transport("cloud"), enqueue=enqueue)
    worker_log = tmp_path / "worker.log"
    with celery_worker(queue=q, env={"CARDIOMESH_STATE_DIR": str(state)}, log_path=worker_log):
        service.start()
        try:
            msg = make_escalation(site=settings.site, patient_id=f"p{unique}", drill=True)
            bus.transport("edge-1").publish(topics.escalation(settings.site, f"p{unique}", "edge-1"), encode(msg))

            def announced() -> ReportMessage | None:
                for topic, raw, _, _ in bus.published:
                    if topic.endswith("/report"):
                        message = decode(raw, max_bytes=settings.max_payload_bytes)
                        assert isinstance(message, ReportMessage)
                        return message
                return None

            report = wait_for(announced, timeout_s=45, what="the report over the filesystem broker",
                              log_path=worker_log)
            assert report.trace_id == msg.trace_id and report.drill is True
            with service.sessions() as session:
                job = session.scalars(select(ReportJob).where(ReportJob.episode_id == msg.payload.alert_id)).one()
            enqueue(job.id)  # a redelivered task: idempotent by job id
            enqueue(job.id)
            wait_for(lambda: True if "already_done" in worker_log.read_text() else None, timeout_s=20,
                     what="the redelivered task to finish", log_path=worker_log)
            assert _report_count(service.sessions, msg.payload.alert_id) == 1
        finally:
            service.stop()
    engine = make_engine(settings.effective_database_url)
    sessions = make_session_factory(engine)
    assert _report_count(sessions, msg.payload.alert_id) == 1
    engine.dispose()
