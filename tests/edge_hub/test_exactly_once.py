"""Each loss path the fault drills found, as a regression test: every alert answered once, never lost.

Faults are real where they can be: the hub's SQLite refuses a write (a trigger), a command subscriber
throws into the publish, the process dies between commit and response (a store left that way).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from edge_hub.app import EdgeHub
from edge_hub.store import EdgeStore, EpisodeRow
from shared import topics
from shared.messages import AlertMessage, encode, new_id
from shared.settings import Settings
from shared.transport import InMemoryBus
from tests import factories
from tests.waiting import wait_until

SITE = "home-x"


def _hub(tmp_path: Path, bus: InMemoryBus) -> EdgeHub:
    settings = Settings(site=SITE, state_dir=tmp_path, analysis_timeout_s=5.0, edge_analysis=False)
    hub = EdgeHub(settings, bus.transport("edge"), store=EdgeStore(tmp_path / "edge.db"))
    hub.start()
    return hub


def _publish(bus: InMemoryBus, alert: AlertMessage) -> None:
    assert alert.patient_id is not None
    bus.transport("w").publish(topics.alert(SITE, alert.patient_id, alert.source), encode(alert))


def _commands(bus: InMemoryBus, alert: AlertMessage) -> list[str]:
    """The responses sent for this alert's patient (the `alert_received` acknowledgements aside)."""
    return [t for t, m, *_ in bus.published if t.endswith("/cmd") and f"/{alert.patient_id}/" in t
            and json.loads(m)["payload"]["command"] != "alert_received"]




def test_an_alert_whose_episode_write_failed_is_not_marked_seen(tmp_path: Path) -> None:
    """Seen used to be committed before the episode: the retry was dropped as a duplicate."""
    bus = InMemoryBus()
    hub = _hub(tmp_path, bus)
    other = sqlite3.connect(tmp_path / "edge.db", isolation_level=None)
    other.execute("CREATE TRIGGER refuse BEFORE INSERT ON episodes BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    alert = factories.alert()
    try:
        _publish(bus, alert)
        assert hub.counters.get("dead_letters.kept") == 1 and _commands(bus, alert) == []
        other.execute("DROP TRIGGER refuse")
        assert wait_until(lambda: len(_commands(bus, alert)) == 2), hub.counters.snapshot()  # retried after ≈ 1 s
        # counted once the retried handler has returned, a moment after its commands went out
        assert wait_until(lambda: hub.counters.get("dead_letters.recovered") == 1), hub.counters.snapshot()
        assert hub.store.counts()["episodes"] == 1
    finally:
        other.close()
        hub.stop()


def test_a_failure_after_the_episode_was_committed_still_answers_the_alert(tmp_path: Path) -> None:
    bus = InMemoryBus()
    hub = _hub(tmp_path, bus)
    calls = []

    def flaky_watch(_topic: str, _payload: bytes) -> None:  # the first command's publish throws
        calls.append(1)
        if len(calls) == 1:
            raise ConnectionError("broker connection reset")

    bus.transport("watch").subscribe(topics.cmd(SITE, "+", "+"), flaky_watch)
    alert = factories.alert()
    try:
        _publish(bus, alert)
        assert hub.counters.get("dead_letters.kept") == 1
        assert hub.store.responded(alert.payload.alert_id) is False
        assert wait_until(lambda: hub.store.responded(alert.payload.alert_id) is True), hub.counters.snapshot()
        assert hub.counters.get("recovered.responses") == 1 and hub.counters.get("duplicate.alert") == 0
        triages = [t for t, *_ in bus.published if t.endswith("/triage")]
        assert len(triages) == 1  # the initial triage went out once, after the retry
    finally:
        hub.stop()


def test_an_episode_recovered_after_a_crash_sends_the_responses_it_missed(tmp_path: Path) -> None:
    alert = factories.alert()
    assert alert.patient_id is not None
    store = EdgeStore(tmp_path / "edge.db")  # the hub died right after committing the episode
    outcome = store.accept_alert(alert.id, EpisodeRow(
        alert_id=alert.payload.alert_id, patient_id=alert.patient_id, device_id=alert.source,
        trace_id=alert.trace_id, drill=False, alert_json=alert.model_dump_json(by_alias=True), analysis_json=None,
        level="emergency", finalized=False, escalated=False, received_mono=0.0, received_at=time.time()))
    assert outcome.outcome == "new"
    store.close()
    bus = InMemoryBus()
    hub = _hub(tmp_path, bus)
    try:
        assert len(_commands(bus, alert)) == 2 and hub.counters.get("recovered.responses") == 1
        _publish(bus, alert)  # the broker's redelivery: seen, answered, nothing more to do
        assert len(_commands(bus, alert)) == 2 and hub.counters.get("duplicate.alert") == 1
        hub.finalize_overdue(now=time.monotonic() + 60)
        assert len([t for t, *_ in bus.published if t.endswith("/escalation")]) == 1
    finally:
        hub.stop()


def test_the_same_alert_under_a_new_message_id_is_one_episode_and_one_response(tmp_path: Path) -> None:
    bus = InMemoryBus()
    hub = _hub(tmp_path, bus)
    alert = factories.alert()
    try:
        _publish(bus, alert)
        _publish(bus, alert.model_copy(update={"id": new_id(), "seq": alert.seq + 10}))  # re-sent after a restart
        assert len(_commands(bus, alert)) == 2 and hub.counters.get("duplicate.alert_event") == 1
        analysis = factories.analysis(alert)
        assert alert.patient_id is not None
        bus.transport("p").publish(topics.analysis(SITE, alert.patient_id, "phone-1"), encode(analysis))
        assert len([t for t, *_ in bus.published if t.endswith("/escalation")]) == 1
        assert hub.store.counts() == {"episodes": 1, "finalized": 1, "escalated": 1}
    finally:
        hub.stop()


def test_a_watch_re_detecting_one_event_under_a_new_alert_id_gets_one_episode_and_one_response(
        tmp_path: Path) -> None:
    """Keyed by the clinical event (patient, device, kind, onset), not only by ids: a watch restarted mid-record
    detects the same run again and mints a new alert id for it."""
    bus = InMemoryBus()
    hub = _hub(tmp_path, bus)
    alert = factories.alert()
    again = alert.model_copy(update={
        "id": new_id(), "seq": alert.seq + 10,
        "payload": alert.payload.model_copy(update={"alert_id": new_id()})})
    other = alert.model_copy(update={  # the next event of the same kind: its own episode
        "id": new_id(), "seq": alert.seq + 20,
        "payload": alert.payload.model_copy(update={"alert_id": new_id(), "onset_s": alert.payload.onset_s + 30})})
    assert alert.patient_id is not None
    try:
        for msg in (alert, again, other):
            _publish(bus, msg)
        assert hub.counters.get("duplicate.alert_event") == 1
        def commands_for(msg: AlertMessage) -> int:
            return sum(1 for t, m, *_ in bus.published
                       if t.endswith("/cmd") and json.loads(m)["payload"]["alert_id"] == msg.payload.alert_id
                       and json.loads(m)["payload"]["command"] != "alert_received")

        assert [commands_for(msg) for msg in (alert, again, other)] == [2, 0, 2]
        # the phone read the re-sent alert: its findings finish the one episode (under the first alert's id)
        bus.transport("p").publish(topics.analysis(SITE, alert.patient_id, "phone-1"),
                                   encode(factories.analysis(again)))
        escalations = [m for t, m, *_ in bus.published if t.endswith("/escalation")]
        assert len(escalations) == 1 and hub.store.counts()["episodes"] == 2
        assert json.loads(escalations[0])["payload"]["alert_id"] == alert.payload.alert_id
    finally:
        hub.stop()
