from __future__ import annotations

import pytest

from phone_agent.app import PhoneAgent, PhoneFleet
from shared import topics
from shared.messages import AnalysisMessage, PresenceMessage, PresencePayload, decode, encode
from shared.settings import Settings
from shared.transport import InMemoryBus
from tests import factories


def test_phone_analyses_its_watch_alert_with_the_same_trace() -> None:
    bus = InMemoryBus()
    phone = PhoneAgent(Settings(site="s"), bus.transport("phone-1"), phone_id="phone-1", watch_id="watch-1",
                       patient_id="pt-1")
    phone.start()
    alert = factories.alert(device="watch-1", patient="pt-1", drill=True)
    for _ in range(2):  # a redelivery is analysed once
        bus.transport("w").publish(topics.alert("s", "pt-1", "watch-1"), encode(alert))
    out = [decode(p, max_bytes=1 << 20) for t, p, *_ in bus.published if t.endswith("/analysis")]
    assert len(out) == 1
    msg = out[0]
    assert isinstance(msg, AnalysisMessage)
    assert msg.trace_id == alert.trace_id and msg.drill and msg.payload.alert_id == alert.payload.alert_id
    assert msg.payload.n_beats > 5 and msg.payload.hr_bpm is not None
    assert phone.counters.get("duplicate.alert") == 1


def test_phone_ignores_other_watches_and_rejects_garbage() -> None:
    bus = InMemoryBus()
    phone = PhoneAgent(Settings(site="s"), bus.transport("phone-1"), phone_id="phone-1", watch_id="watch-1",
                       patient_id="pt-1")
    phone.start()
    bus.transport("w").publish(topics.alert("s", "pt-1", "watch-2"), encode(factories.alert(device="watch-2",
                                                                                              patient="pt-1")))
    bus.transport("w").publish(topics.alert("s", "pt-1", "watch-1"), b"not json")
    assert not [t for t, *_ in bus.published if t.endswith("/analysis")]
    assert phone.counters.get("rejected.not_json") == 1


BAD = [(b"\x00garbage", "not_json"), (b"{" + b" " * 600_000 + b"}", "oversized"),
       (b'{"type": "alert", "payload": {"kind": "x"}}', "invalid")]


@pytest.mark.parametrize(("payload", "reason"), BAD)
def test_phone_rejects_bad_alerts_and_keeps_working(payload: bytes, reason: str) -> None:
    bus = InMemoryBus()
    phone = PhoneAgent(Settings(site="s"), bus.transport("phone-1"), phone_id="phone-1", watch_id="watch-1",
                       patient_id="pt-1")
    phone.start()
    bus.transport("w").publish(topics.alert("s", "pt-1", "watch-1"), payload)
    assert phone.counters.get(f"rejected.{reason}") == 1
    bus.transport("w").publish(topics.alert("s", "pt-1", "watch-1"), encode(factories.alert(device="watch-1",
                                                                                              patient="pt-1")))
    assert len([t for t, *_ in bus.published if t.endswith("/analysis")]) == 1


def test_a_phone_follows_its_watch_to_a_new_patient() -> None:
    """A watch that comes back as another patient: its phone re-pairs instead of reading for the old one."""
    bus = InMemoryBus()
    fleet = PhoneFleet(Settings(site="s"), lambda cid, _w, _o: bus.transport(cid))
    fleet.start()

    def presence(patient: str) -> None:
        msg = PresenceMessage(source="watch-1", patient_id=patient,
                              payload=PresencePayload(status="online", role="watch", paired_with=["phone-1"]))
        bus.transport("watch-1").publish(topics.presence("s", "watch-1"), encode(msg))

    presence("pt-1")
    presence("pt-1")  # the same pairing again: nothing changes
    assert fleet.phones["phone-1"][0].patient_id == "pt-1" and fleet.counters.get("phones.repaired") == 0
    presence("pt-2")
    assert fleet.phones["phone-1"][0].patient_id == "pt-2" and fleet.counters.get("phones.repaired") == 1
    for patient in ("pt-1", "pt-2"):
        alert = factories.alert(device="watch-1", patient=patient)
        bus.transport("w").publish(topics.alert("s", patient, "watch-1"), encode(alert))
    found = [decode(p, max_bytes=1 << 20) for t, p, *_ in bus.published if t.endswith("/analysis")]
    assert [m.patient_id for m in found] == ["pt-2"]  # nothing more for the previous patient
    fleet.stop()
