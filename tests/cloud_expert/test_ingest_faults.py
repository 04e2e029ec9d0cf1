"""A database failover during ingest loses no escalation (real Mosquitto, real PostgreSQL).

The fault: the cloud's schema disappears for a while (renamed away, its connections terminated), so
`ingest` raises as it did when a failover cut the connections. Before dead letters the router counted
"handler failed", the transport acknowledged the message and the escalation was gone for good.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from cardiomesh.runtime import dead_letter_path, mqtt_transport
from cloud_expert.db import Episode
from cloud_expert.service import CloudService
from shared import topics
from shared.messages import EscalationMessage, encode
from shared.settings import Settings
from shared.transport import DeadLetterStore, MqttTransport
from tests.cloud_expert.factories import make_escalation
from tests.integration.faults import record_fault
from tests.waiting import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.integration]




@contextmanager
def _schema_gone(url: str) -> Iterator[None]:
    """Rename the test's private schema away and cut its connections; put it back on exit."""
    options = make_url(url).query["options"]
    schema = (options if isinstance(options, str) else options[0]).split("=", 1)[1]
    plain = make_url(url).set(drivername="postgresql", query={}).render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'ALTER SCHEMA "{schema}" RENAME TO "{schema}_away"')
        conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pid <> pg_backend_pid() "
                     "AND datname = current_database() AND application_name = ''")
    try:
        yield
    finally:
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'ALTER SCHEMA "{schema}_away" RENAME TO "{schema}"')


def _episodes(service: CloudService, alert_id: str) -> int:
    with service.sessions() as session:
        return int(session.scalar(select(func.count()).select_from(Episode).where(Episode.id == alert_id)) or 0)


def _cloud(settings: Settings, unique: str) -> CloudService:
    transport = mqtt_transport(settings, f"cloud-{unique}", outbox=True)
    return CloudService(settings, transport, enqueue=lambda _job: None, ingest_group=None, loop_interval_s=None)


def _publish(publisher: MqttTransport, msg: EscalationMessage) -> None:
    publisher.publish(topics.escalation(msg.payload.site, msg.patient_id or "", msg.source), encode(msg))


@pytest.fixture
def pg_settings(settings: Settings, pg_schema_url: str, mosquitto: tuple[str, int]) -> Settings:
    host, port = mosquitto
    return settings.model_copy(update={"database_url": pg_schema_url, "mqtt_url": f"mqtt://{host}:{port}"})


@pytest.fixture
def publisher(pg_settings: Settings, unique: str) -> Iterator[MqttTransport]:
    transport = mqtt_transport(pg_settings, f"edge-{unique}", clean_session=True)
    transport.start(wait_s=5)
    yield transport
    transport.stop()


def test_an_escalation_during_a_database_outage_is_stored_once_it_is_back(
    pg_settings: Settings, pg_schema_url: str, publisher: MqttTransport, unique: str
) -> None:
    service = _cloud(pg_settings, unique)
    service.start()
    try:
        assert isinstance(service.transport, MqttTransport) and service.transport.wait_subscribed(5)
        msg = make_escalation(site=pg_settings.site, patient_id=f"p{unique}")
        with _schema_gone(pg_schema_url):
            _publish(publisher, msg)
            assert wait_until(lambda: service.counters.get("dead_letters.kept") == 1, 10), service.counters.snapshot()
        # back: the kept message is retried (backoff 1 s, 2 s, …) and stored exactly once
        recovered = wait_until(lambda: service.counters.get("dead_letters.recovered") == 1, 15)
        record_fault("cloud database gone during an escalation (schema away, connections cut)",
                     "kept as a dead letter, stored once the database is back",
                     f"kept {service.counters.get('dead_letters.kept')}, recovered "
                     f"{service.counters.get('dead_letters.recovered')}, episodes "
                     f"{_episodes(service, msg.payload.alert_id)}")
        assert recovered, service.counters.snapshot()
        assert _episodes(service, msg.payload.alert_id) == 1
        assert service.router.dead_letters.all() == []
    finally:
        service.stop()


def test_a_cloud_restarted_during_the_outage_still_stores_the_escalation(
    pg_settings: Settings, pg_schema_url: str, publisher: MqttTransport, unique: str
) -> None:
    first = _cloud(pg_settings, unique)
    first.start()
    msg = make_escalation(site=pg_settings.site, patient_id=f"p{unique}")
    with _schema_gone(pg_schema_url):
        try:
            assert isinstance(first.transport, MqttTransport) and first.transport.wait_subscribed(5)
            _publish(publisher, msg)
            assert wait_until(lambda: first.counters.get("dead_letters.kept") == 1, 10), first.counters.snapshot()
        finally:
            first.stop()  # acknowledged to the broker, but kept on disk: the next run owns it
    kept = DeadLetterStore(dead_letter_path(pg_settings, f"cloud-{unique}"))
    assert len(kept.all()) == 1
    kept.close()
    second = _cloud(pg_settings, unique)
    second.start()
    try:
        recovered = wait_until(lambda: second.counters.get("dead_letters.recovered") == 1, 15)
        record_fault("cloud restarted while the database is down, an escalation kept",
                     "the next run retries it from disk and stores it once",
                     f"recovered {second.counters.get('dead_letters.recovered')}, episodes "
                     f"{_episodes(second, msg.payload.alert_id)}")
        assert recovered, second.counters.snapshot()
        assert _episodes(second, msg.payload.alert_id) == 1
    finally:
        second.stop()


def test_connections_cut_again_and_again_during_a_burst_lose_no_escalation(
    pg_settings: Settings, pg_schema_url: str, publisher: MqttTransport, unique: str
) -> None:
    """The drill that lost 4 of 8: the cloud's connections terminated every 0.1 s while escalations arrive."""
    app = f"cm-fault-{unique}"
    url = make_url(pg_schema_url).update_query_dict({"application_name": app}).render_as_string(
        hide_password=False)
    service = _cloud(pg_settings.model_copy(update={"database_url": url}), unique)
    service.start()
    stop = threading.Event()
    cuts = [0]

    def cut() -> None:  # what a failover does to a pool: every connection dies, again and again
        plain = make_url(pg_schema_url).set(drivername="postgresql", query={}).render_as_string(hide_password=False)
        with psycopg.connect(plain, autocommit=True) as conn:
            while not stop.is_set():
                cuts[0] += conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                        "WHERE application_name = %s", (app,)).fetchone()[0]  # type: ignore[index]
                time.sleep(0.1)

    killer = threading.Thread(target=cut, daemon=True)
    messages = [make_escalation(site=pg_settings.site, patient_id=f"p{unique}") for _ in range(8)]
    try:
        assert isinstance(service.transport, MqttTransport) and service.transport.wait_subscribed(5)
        killer.start()
        for msg in messages:
            _publish(publisher, msg)
            time.sleep(0.5)
        time.sleep(2.0)
        stop.set()
        killer.join(timeout=5)
        stored = wait_until(lambda: all(_episodes(service, m.payload.alert_id) == 1 for m in messages), 30)
        counts = [_episodes(service, m.payload.alert_id) for m in messages]
        record_fault("cloud database connections terminated every 0.1 s during a burst of 8 escalations",
                     "all 8 stored, each once",
                     f"{sum(c == 1 for c in counts)} of 8 stored once ({cuts[0]} connections cut; kept "
                     f"{service.counters.get('dead_letters.kept')}, recovered "
                     f"{service.counters.get('dead_letters.recovered')})")
        assert stored and counts == [1] * 8, (counts, service.counters.snapshot())
    finally:
        stop.set()
        service.stop()
