"""CloudService on the in-memory bus: ingest → commit → enqueue, announcements, sweeper, bad payloads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select

from cloud_expert.db import Episode, ReportJob
from cloud_expert.reports.jobs import run_report_job
from cloud_expert.service import MAX_ATTEMPTS, CloudService
from shared import topics
from shared.messages import EscalationMessage, ReportMessage, decode, encode, new_id
from shared.settings import Settings
from shared.transport import InMemoryBus
from tests.cloud_expert.factories import make_escalation


@dataclass
class Enqueued:
    service: CloudService | None = None
    job_ids: list[str] = field(default_factory=list)
    committed: list[bool] = field(default_factory=list)
    fail: bool = False

    def __call__(self, job_id: str) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        assert self.service is not None
        with self.service.sessions() as session:  # a fresh session: sees only committed rows
            self.committed.append(session.get(ReportJob, job_id) is not None)
        self.job_ids.append(job_id)


@pytest.fixture
def bus() -> InMemoryBus:
    return InMemoryBus()


@pytest.fixture
def enqueued() -> Enqueued:
    return Enqueued()


@pytest.fixture
def service(settings: Settings, bus: InMemoryBus, enqueued: Enqueued) -> Iterator[CloudService]:
    svc = CloudService(settings, bus.transport("cloud-test"), enqueue=enqueued, loop_interval_s=None)
    enqueued.service = svc
    svc.start()
    yield svc
    svc.stop()


def _publish(bus: InMemoryBus, msg: EscalationMessage) -> None:
    topic = topics.escalation(msg.payload.site, msg.patient_id or "", msg.source)
    bus.transport("edge").publish(topic, encode(msg))


def _reports(bus: InMemoryBus) -> list[tuple[str, ReportMessage]]:
    out = []
    for topic, raw, qos, _ in bus.published:
        if topic.endswith("/report"):
            message = decode(raw, max_bytes=10**7)
            assert isinstance(message, ReportMessage) and qos == 1
            out.append((topic, message))
    return out


def test_escalation_is_stored_then_enqueued_after_commit(
    service: CloudService, bus: InMemoryBus, enqueued: Enqueued, settings: Settings, unique: str
) -> None:
    msg = make_escalation(site=settings.site, patient_id=f"p{unique}")
    _publish(bus, msg)
    assert enqueued.committed == [True]
    with service.sessions() as session:
        episode = session.get(Episode, msg.payload.alert_id)
        assert episode is not None and episode.hops_json[-1]["name"] == "cloud_ingest"
        assert episode.job is not None and enqueued.job_ids == [episode.job.id]
    assert service.counters.get("stored") == 1


def test_duplicates_are_counted_and_not_enqueued(
    service: CloudService, bus: InMemoryBus, enqueued: Enqueued, settings: Settings, unique: str
) -> None:
    msg = make_escalation(site=settings.site, patient_id=f"p{unique}")
    for _ in range(3):
        _publish(bus, msg)
    _publish(bus, msg.model_copy(update={"id": new_id()}))
    assert len(enqueued.job_ids) == 1
    assert service.counters.get("stored") == 1 and service.counters.get("duplicates") == 3


def test_done_report_is_announced_once_with_trace_and_hops(
    service: CloudService, bus: InMemoryBus, enqueued: Enqueued, settings: Settings, unique: str
) -> None:
    msg = make_escalation(site=settings.site, patient_id=f"p{unique}", drill=True)
    _publish(bus, msg)
    assert service.announce_reports() == 0  # not rendered yet
    assert run_report_job(service.sessions, enqueued.job_ids[0], now=service._now) == "done"
    service.tick()
    service.tick()
    ((topic, report),) = _reports(bus)
    assert topic == topics.report(settings.site, f"p{unique}", "cloud")
    assert report.trace_id == msg.trace_id and report.drill is True and report.source == "cloud"
    assert report.payload.alert_id == msg.payload.alert_id and report.payload.level == "emergency"
    assert report.payload.url == f"/reports/{report.payload.report_id}"
    assert [h.name for h in report.payload.hops] == [
        "watch_alert", "phone_analysis", "edge_escalation", "cloud_ingest", "report_rendered"]
    with service.sessions() as session:
        job = session.get(ReportJob, enqueued.job_ids[0])
        assert job is not None and job.announced


def test_sweeper_requeues_lost_and_failed_jobs(
    settings: Settings, bus: InMemoryBus, enqueued: Enqueued, unique: str
) -> None:
    svc = CloudService(settings.model_copy(update={"report_sweep_s": 0.0}), bus.transport("cloud-sweep"),
                       enqueue=enqueued, loop_interval_s=None)
    enqueued.service = svc
    svc.start()
    try:
        enqueued.fail = True  # the broker is down when the escalation arrives
        _publish(bus, make_escalation(site=settings.site, patient_id=f"p{unique}"))
        assert svc.counters.get("enqueue_failed") == 1 and enqueued.job_ids == []
        enqueued.fail = False
        assert svc.sweep_jobs() == 1
        with svc.sessions() as session:
            job = session.scalars(select(ReportJob)).one()
            assert job.attempts == 2 and job.status == "queued" and enqueued.job_ids == [job.id]
            job.status, job.attempts = "failed", MAX_ATTEMPTS  # out of attempts: left for a person
            session.commit()
        assert svc.sweep_jobs() == 0
        with svc.sessions() as session:
            session.scalars(select(ReportJob)).one().attempts = MAX_ATTEMPTS - 1
            session.commit()
        assert svc.sweep_jobs() == 1
    finally:
        svc.stop()


def test_fresh_jobs_are_not_swept(service: CloudService, bus: InMemoryBus, enqueued: Enqueued,
                                  settings: Settings, unique: str) -> None:
    _publish(bus, make_escalation(site=settings.site, patient_id=f"p{unique}"))
    assert service.sweep_jobs() == 0  # report_sweep_s = 30 s has not passed


def test_malformed_payloads_are_rejected_and_counted(
    service: CloudService, bus: InMemoryBus, enqueued: Enqueued, settings: Settings, unique: str
) -> None:
    patient = f"p{unique}"
    topic = topics.escalation(settings.site, patient, "edge-1")
    edge = bus.transport("edge")
    good = make_escalation(site=settings.site, patient_id=patient)
    wrong_schema = json.loads(encode(good))
    wrong_schema["payload"]["level"] = "apocalyptic"
    alert = good.payload.alert  # a valid message of another type on the escalation topic
    edge.publish(topic, b"\x00\xffnot json at all")
    edge.publish(topic, b"{" + b" " * settings.max_payload_bytes + b"}")
    edge.publish(topic, json.dumps(wrong_schema).encode())
    edge.publish(topic, json.dumps({"type": "escalation", "payload": 3}).encode())
    edge.publish(topic, b"[1, 2, 3]")
    edge.publish(topics.escalation(settings.site, patient, "watch-1"), encode(alert))
    edge.publish(topics.escalation(settings.site, patient, "someone-else"), encode(good))
    snapshot = service.counters.snapshot()
    assert snapshot["rejected.not_json"] == 1
    assert snapshot["rejected.oversized"] == 1
    assert snapshot["rejected.invalid"] == 3
    assert snapshot["rejected.wrong_type"] == 1
    assert snapshot["rejected.wrong_topic"] == 1
    assert enqueued.job_ids == [] and service.counters.get("stored") == 0
    _publish(bus, good)  # and the service carries on
    assert service.counters.get("stored") == 1


def test_an_emergencys_report_goes_to_the_emergency_queue_first_time_and_when_swept(
    settings: Settings, bus: InMemoryBus, unique: str
) -> None:
    routine, emergency = Enqueued(), Enqueued()
    svc = CloudService(settings, bus.transport("cloud-lanes"), enqueue=routine, enqueue_emergency=emergency,
                       loop_interval_s=None)
    routine.service = emergency.service = svc
    svc.start()
    try:
        urgent = make_escalation(site=settings.site, patient_id=f"pu{unique}", level="urgent")
        critical = make_escalation(site=settings.site, patient_id=f"pe{unique}", level="emergency")
        _publish(bus, urgent)
        _publish(bus, critical)
        assert (len(routine.job_ids), len(emergency.job_ids)) == (1, 1)
        assert svc.counters.get("enqueued") == 1 and svc.counters.get("enqueued.emergency") == 1
        with svc.sessions() as session:  # both lost (a broker down): the sweeper re-sends each to its own lane
            for job in session.scalars(select(ReportJob)):
                job.status, job.enqueued_at = "failed", job.enqueued_at
            session.commit()
        assert svc.sweep_jobs() == 2
        assert (len(routine.job_ids), len(emergency.job_ids)) == (2, 2)
        assert emergency.job_ids[0] == emergency.job_ids[1] != routine.job_ids[0]
    finally:
        svc.stop()
