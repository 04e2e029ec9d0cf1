"""Several edge hubs per site: each patient belongs to exactly one hub, which alone answers, triages and
summarises for it; a hub learns its patients from retained presence and from its own store after a restart."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_hub.app import EdgeHub
from edge_hub.shards import Shard
from edge_hub.store import EdgeStore
from shared import topics
from shared.messages import (
    PresenceMessage,
    PresencePayload,
    TriageMessage,
    VitalsMessage,
    VitalsPayload,
    decode,
    encode,
)
from shared.settings import Settings
from shared.transport import InMemoryBus
from tests import factories

SITE = "home-shard"
PATIENTS = [f"pt-{i:02d}" for i in range(12)]


def _hub(tmp_path: Path, bus: InMemoryBus, shard: str, edge_id: str) -> EdgeHub:
    settings = Settings(site=SITE, state_dir=tmp_path, analysis_timeout_s=60, edge_analysis=False, edge_shard=shard)
    hub = EdgeHub(settings, bus.transport(edge_id), edge_id=edge_id, store=EdgeStore(tmp_path / f"{edge_id}.db"))
    hub.start()
    return hub


def test_a_shard_is_parsed_and_splits_patients_stably() -> None:
    halves = [Shard.parse("0/2"), Shard.parse("1/2")]
    owners = [[s.owns(p) for s in halves] for p in PATIENTS]
    assert all(sum(o) == 1 for o in owners)  # exactly one hub each
    assert 2 <= sum(o[0] for o in owners) <= 10  # both hubs get some of twelve
    assert not halves[0].owns(None)
    for bad in ("2/2", "1", "a/b", "-1/2"):
        with pytest.raises(ValueError):
            Shard.parse(bad)


def test_each_patient_is_answered_by_its_own_hub_only(tmp_path: Path) -> None:
    bus = InMemoryBus()
    devices = bus.transport("devices")
    for i, patient in enumerate(PATIENTS[:6]):  # some patients announce themselves before the hubs start
        devices.publish(topics.presence(SITE, f"watch-{i}"), encode(PresenceMessage(
            source=f"watch-{i}", patient_id=patient, payload=PresencePayload(status="online", role="watch"))),
            retain=True)
    hubs = [_hub(tmp_path, bus, "0/2", "edge-1"), _hub(tmp_path, bus, "1/2", "edge-2")]
    try:
        for i, patient in enumerate(PATIENTS[6:], start=6):  # and some after
            devices.publish(topics.presence(SITE, f"watch-{i}"), encode(PresenceMessage(
                source=f"watch-{i}", patient_id=patient, payload=PresencePayload(status="online", role="watch"))),
                retain=True)
        for i, patient in enumerate(PATIENTS):
            devices.publish(topics.vitals(SITE, patient, f"watch-{i}"), encode(VitalsMessage(
                source=f"watch-{i}", patient_id=patient, payload=VitalsPayload(hr_bpm=70, n_beats=10, window_s=10,
                                                                               stream_s=1.0))), qos=0)
            alert = factories.alert(kind="wide_complex_run", device=f"watch-{i}", patient=patient)
            devices.publish(topics.alert(SITE, patient, f"watch-{i}"), encode(alert))
        triaged: dict[str, set[str]] = {}
        for t, p, *_ in bus.published:
            if t.endswith("/triage") and isinstance(m := decode(p, max_bytes=1 << 22), TriageMessage):
                triaged.setdefault(m.patient_id or "", set()).add(m.source)
        assert set(triaged) == set(PATIENTS)
        for patient, sources in triaged.items():
            owner = "edge-1" if Shard.parse("0/2").owns(patient) else "edge-2"
            assert sources == {owner}, (patient, sources)
        for hub in hubs:
            mine = {p for p in PATIENTS if hub.shard is not None and hub.shard.owns(p)}
            assert {v.patient_id for v in hub.latest_vitals.values()} == mine
            assert hub.counters.get("shard.patients") == len(mine)
    finally:
        for hub in hubs:
            hub.stop()
    # after a restart a hub subscribes to the patients its store knows, before any presence comes
    again = _hub(tmp_path, InMemoryBus(), "0/2", "edge-1")
    try:
        assert again.counters.get("shard.patients") == sum(Shard.parse("0/2").owns(p) for p in PATIENTS)
    finally:
        again.stop()
