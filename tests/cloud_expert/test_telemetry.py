"""The edge's telemetry in the cloud: full-disclosure strips and per-minute heart rate, stored once however often
delivered, combined when read, never from a drill, and erased with the patient."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from cloud_expert.db import DeviceRow, HrMinuteRow, StripSegment
from cloud_expert.erasure import apply_retention, erase_patient
from cloud_expert.service import CloudService
from cloud_expert.telemetry import disclosure, hr_trend, store_disclosure, store_summary
from shared import topics
from shared.messages import (
    DeviceState,
    DisclosureMessage,
    DisclosurePayload,
    EcgStrip,
    HrMinute,
    SummaryMessage,
    SummaryPayload,
    encode,
    utcnow,
)
from shared.settings import Settings
from shared.transport import InMemoryBus

T0 = datetime(2026, 12, 4, 9, 0, tzinfo=UTC)


def _disclosure(alert_id: str = "a1", *, drill: bool = False, patient: str = "pt-t") -> DisclosureMessage:
    segments = [EcgStrip.from_mv(np.sin(np.arange(500) / 40.0), fs=250.0, t0_s=t0) for t0 in (130.0, 134.0)]
    return DisclosureMessage(source="edge-1", patient_id=patient, drill=drill, payload=DisclosurePayload(
        alert_id=alert_id, device_id="watch-1", segments=segments, complete=False, expected_s=30.0))


def _summary(minutes: list[tuple[int, int, float, float, float]], *, patient: str = "pt-t",
             drill: bool = False) -> SummaryMessage:
    return SummaryMessage(source="edge-1", patient_id=patient, drill=drill, payload=SummaryPayload(
        devices=[DeviceState(device_id="watch-1", role="watch", status="online", last_seen=T0)],
        minutes=[HrMinute(device_id="watch-1", minute=T0 + timedelta(minutes=m), n=n, hr_mean=mean, hr_min=lo,
                          hr_max=hi, signal_ok_share=1.0) for m, n, mean, lo, hi in minutes]))


def test_a_disclosure_is_stored_once_and_read_back_in_order(sessions: sessionmaker[Session]) -> None:
    message = _disclosure()
    with sessions() as session:
        assert store_disclosure(session, "s1", message, utcnow()) == 2
        assert store_disclosure(session, "s1", message, utcnow()) == 0  # redelivered: nothing new
        session.commit()
        segments = disclosure(session, "a1")
    assert [s.t0_s for s in segments] == [130.0, 134.0] and not any(s.complete for s in segments)
    expected = message.payload.segments[0].to_mv()
    assert np.allclose(segments[0].samples_mv, expected)


def test_heart_rate_parts_combine_by_readings_and_a_redelivery_counts_once(sessions: sessionmaker[Session]) -> None:
    first = _summary([(0, 30, 60.0, 55.0, 70.0), (1, 60, 80.0, 75.0, 90.0)])
    late = _summary([(0, 10, 100.0, 95.0, 120.0)])  # late readings of minute 0, a second part
    with sessions() as session:
        assert store_summary(session, "s1", first, utcnow()) == 2
        assert store_summary(session, "s1", first, utcnow()) == 0
        assert store_summary(session, "s1", late, utcnow()) == 1
        session.commit()
        per_minute = hr_trend(session, "pt-t", since=T0, until=T0 + timedelta(hours=1))
        per_hour = hr_trend(session, "pt-t", since=T0, until=T0 + timedelta(hours=1), bucket=timedelta(hours=1))
        [device] = session.scalars(select(DeviceRow)).all()
    assert [(p.start, p.n, p.hr_mean, p.hr_min, p.hr_max) for p in per_minute] == [
        (T0, 40, 70.0, 55.0, 120.0), (T0 + timedelta(minutes=1), 60, 80.0, 75.0, 90.0)]
    assert [(p.n, p.hr_mean) for p in per_hour] == [(100, 76.0)]
    assert (device.patient_id, device.status, device.role) == ("pt-t", "online", "watch")


def test_a_drill_never_enters_a_trend(sessions: sessionmaker[Session]) -> None:
    with sessions() as session, pytest.raises(ValueError, match="drill"):
        store_summary(session, "s1", _summary([(0, 1, 60.0, 60.0, 60.0)], drill=True), utcnow())


def test_retention_takes_old_telemetry_and_keeps_the_recent(sessions: sessionmaker[Session]) -> None:
    old, recent = utcnow() - timedelta(days=40), utcnow() - timedelta(days=1)

    def minute_at(at: datetime, patient: str) -> SummaryMessage:
        return SummaryMessage(source="edge-1", patient_id=patient, payload=SummaryPayload(minutes=[HrMinute(
            device_id="watch-1", minute=at.replace(second=0, microsecond=0), n=1, hr_mean=60.0, hr_min=60.0,
            hr_max=60.0, signal_ok_share=1.0)]))

    with sessions() as session:
        store_disclosure(session, "s1", _disclosure("a-old"), old)
        store_disclosure(session, "s1", _disclosure("a-new"), recent)
        store_summary(session, "s1", minute_at(old, "pt-t"), old)
        store_summary(session, "s1", minute_at(recent, "pt-t"), recent)
        session.commit()
        apply_retention(session, before=utcnow() - timedelta(days=30), by="test")
        session.commit()
        assert session.scalars(select(StripSegment.alert_id).distinct()).all() == ["a-new"]
        assert [m.date() for m in session.scalars(select(HrMinuteRow.minute))] == [recent.date()]


@pytest.fixture
def service(settings: Settings) -> Iterator[tuple[CloudService, InMemoryBus]]:
    bus = InMemoryBus()
    svc = CloudService(settings, bus.transport("cloud-t"), enqueue=lambda job_id: None, loop_interval_s=None)
    svc.start()
    yield svc, bus
    svc.stop()


def test_the_cloud_service_stores_what_edges_send_and_refuses_drill_summaries(
        service: tuple[CloudService, InMemoryBus]) -> None:
    svc, bus = service
    edge = bus.transport("edge-1")
    message = _disclosure("a9")
    for _ in range(2):
        edge.publish(topics.disclosure("s1", "pt-t", "edge-1"), encode(message))
    edge.publish(topics.summary("s1", "pt-t", "edge-1"), encode(_summary([(0, 5, 60.0, 58.0, 62.0)])))
    edge.publish(topics.summary("s1", "pt-t", "edge-1"), encode(_summary([(1, 5, 99.0, 99.0, 99.0)], drill=True)))
    edge.publish(topics.summary("s1", "pt-t", "edge-1"), b'{"type": "summary", "payload": 3}')
    assert svc.counters.get("disclosures.stored") == 1 and svc.counters.get("disclosures.duplicate") == 1
    assert svc.counters.get("hr_minutes.stored") == 1 and svc.counters.get("rejected.drill_summary") == 1
    assert svc.counters.get("rejected.invalid") == 1
    with svc.sessions() as session:
        assert len(disclosure(session, "a9")) == 2
        assert [p.hr_mean for p in hr_trend(session, "pt-t", since=T0, until=T0 + timedelta(hours=1))] == [60.0]
        erase_patient(session, "pt-t", by="test", reason="request", now=utcnow())
        session.commit()
        assert disclosure(session, "a9") == [] and hr_trend(session, "pt-t", since=T0, until=T0 + timedelta(1)) == []
        assert session.scalar(select(func.count()).select_from(DeviceRow)) == 0
