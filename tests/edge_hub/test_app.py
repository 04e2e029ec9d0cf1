"""The hub's wiring on the in-memory bus: respond at once, escalate after findings, never lose or repeat."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from edge_hub.app import EdgeHub
from edge_hub.store import EdgeStore
from shared import topics
from shared.messages import AlertMessage, CommandMessage, EscalationMessage, TriageMessage, decode, encode
from shared.settings import Settings
from shared.transport import InMemoryBus
from tests import factories

SITE = "home-t"


def _hub(tmp_path: Path, bus: InMemoryBus, timeout_s: float = 5.0, edge_analysis: bool = False) -> EdgeHub:
    settings = Settings(site=SITE, state_dir=tmp_path, analysis_timeout_s=timeout_s, edge_analysis=edge_analysis)
    hub = EdgeHub(settings, bus.transport("edge"), store=EdgeStore(tmp_path / "edge.db"))
    hub.start()
    return hub


def _sent(bus: InMemoryBus, kind: str) -> list:
    """What the hub published of one kind; commands without the `alert_received` acknowledgements."""
    found = [decode(p, max_bytes=1 << 22) for t, p, *_ in bus.published if t.endswith("/" + kind)]
    return [m for m in found if not (isinstance(m, CommandMessage) and m.payload.command == "alert_received")]


def _acks(bus: InMemoryBus) -> list[str | None]:
    return [m.payload.alert_id for t, p, *_ in bus.published if t.endswith("/cmd")
            and (m := decode(p, max_bytes=1 << 22)) and isinstance(m, CommandMessage)
            and m.payload.command == "alert_received"]


def _patient(alert: AlertMessage) -> str:
    assert alert.patient_id is not None
    return alert.patient_id


def _publish_alert(bus: InMemoryBus, alert: AlertMessage) -> None:
    bus.transport("w").publish(topics.alert(SITE, _patient(alert), alert.source), encode(alert))


def test_alert_gets_immediate_response_then_escalation_with_findings(tmp_path: Path) -> None:
    bus = InMemoryBus()
    hub = _hub(tmp_path, bus)
    alert = factories.alert(kind="wide_complex_run")
    started = time.perf_counter()
    _publish_alert(bus, alert)
    elapsed_ms = (time.perf_counter() - started) * 1000
    commands = _sent(bus, "cmd")
    assert [c.payload.command for c in commands] == ["notify_wearer", "stream_strip"]
    assert _acks(bus) == []  # the responses name the alert: they tell the watch it is held
    assert all(isinstance(c, CommandMessage) and c.trace_id == alert.trace_id for c in commands)
    assert elapsed_ms < 1000  # sanity only; latency is measured in bench/alert_latency.py
    assert _sent(bus, "escalation") == []  # waits for the phone
    analysis = factories.analysis(alert, rhythm="sinus_tachycardia")
    bus.transport("p").publish(topics.analysis(SITE, _patient(alert), "phone-1"), encode(analysis))
    escalations = _sent(bus, "escalation")
    assert len(escalations) == 1
    esc = escalations[0]
    assert isinstance(esc, EscalationMessage) and esc.trace_id == alert.trace_id
    assert esc.payload.analysis == analysis and esc.payload.level == "emergency"
    assert [h.name for h in esc.payload.hops][:3] == ["watch_alert", "edge_received", "edge_response"]
    triages = [m for m in _sent(bus, "triage") if isinstance(m, TriageMessage)]
    assert [t.payload.stage for t in triages] == ["initial", "final"]
    assert hub.store.counts() == {"episodes": 1, "finalized": 1, "escalated": 1}


def test_duplicate_alert_and_analysis_are_counted_once(tmp_path: Path) -> None:
    bus = InMemoryBus()
    hub = _hub(tmp_path, bus)
    alert = factories.alert()
    _publish_alert(bus, alert)
    _publish_alert(bus, alert)
    analysis = factories.analysis(alert)
    for _ in range(2):
        bus.transport("p").publish(topics.analysis(SITE, _patient(alert), "phone-1"), encode(analysis))
    assert len(_sent(bus, "escalation")) == 1 and len(_sent(bus, "cmd")) == 2
    assert hub.counters.get("duplicate.alert") == 1 and hub.counters.get("duplicate.analysis") == 1


def test_missing_phone_findings_escalate_after_timeout(tmp_path: Path) -> None:
    bus = InMemoryBus()
    hub = _hub(tmp_path, bus, timeout_s=0.2)
    alert = factories.alert(kind="pause", evidence={"pause_s": 3.2})
    _publish_alert(bus, alert)
    hub.finalize_overdue(now=time.monotonic() + 1)
    (esc,) = _sent(bus, "escalation")
    assert esc.payload.analysis is None and "no phone findings in time" in esc.payload.reasons


def test_the_edge_reads_the_strip_itself_when_the_phone_is_silent(tmp_path: Path) -> None:
    """Same shared analysis as the phone; marked as the edge's, with its own hop."""
    bus = InMemoryBus()
    hub = _hub(tmp_path, bus, timeout_s=0.2, edge_analysis=True)
    alert = factories.alert(kind="pause", evidence={"pause_s": 3.2})
    _publish_alert(bus, alert)
    hub.finalize_overdue(now=time.monotonic() + 1)
    hub.wait_idle()
    (esc,) = _sent(bus, "escalation")
    assert esc.payload.analysis is not None and esc.payload.analysis.source == hub.edge_id
    assert esc.payload.analysis.payload.method.startswith("edge:")
    assert esc.payload.analysis.payload.n_beats > 0
    assert "no phone findings in time: strip read at the edge" in esc.payload.reasons
    assert [h.name for h in esc.payload.hops].count("edge_analysis") == 1
    assert hub.counters.get("analysis.edge") == 1


def test_info_level_is_triaged_but_not_escalated(tmp_path: Path) -> None:
    bus = InMemoryBus()
    hub = _hub(tmp_path, bus)
    alert = factories.alert(kind="tachycardia", hr=125)
    _publish_alert(bus, alert)
    bus.transport("p").publish(topics.analysis(SITE, _patient(alert), "phone-1"),
                               encode(factories.analysis(alert, rhythm="sinus_tachycardia", hr=125)))
    assert _sent(bus, "escalation") == [] and _sent(bus, "cmd") == []
    assert _acks(bus) == [alert.payload.alert_id]  # no response needed, but the alert is acknowledged
    assert [t.payload.level for t in _sent(bus, "triage")] == ["info", "info"]
    assert hub.store.counts()["finalized"] == 1


def test_open_episodes_survive_a_restart(tmp_path: Path) -> None:
    bus = InMemoryBus()
    hub = _hub(tmp_path, bus)
    alert = factories.alert()
    _publish_alert(bus, alert)
    hub.stop()
    hub.store.close()
    bus2 = InMemoryBus()
    revived = _hub(tmp_path, bus2)  # same edge.db
    revived.finalize_overdue(now=time.monotonic() + 60)
    (esc,) = _sent(bus2, "escalation")
    assert esc.payload.alert_id == alert.payload.alert_id


def test_drills_keep_their_flag_and_never_corroborate_clinical_alerts(tmp_path: Path) -> None:
    bus = InMemoryBus()
    hub = _hub(tmp_path, bus)
    drill = factories.alert(kind="pause", device="watch-1", drill=True, evidence={"pause_s": 3.0})
    _publish_alert(bus, drill)
    real = factories.alert(kind="pause", device="watch-2", evidence={"pause_s": 3.0})
    _publish_alert(bus, real)
    hub.finalize_overdue(now=time.monotonic() + 60)
    by_alert = {e.payload.alert_id: e for e in _sent(bus, "escalation")}
    assert by_alert[drill.payload.alert_id].drill is True
    assert by_alert[real.payload.alert_id].drill is False
    assert by_alert[real.payload.alert_id].payload.level == "urgent"  # not bumped by the drill
    assert all(c.drill for c in _sent(bus, "cmd") if c.trace_id == drill.trace_id)


@pytest.mark.parametrize("kind", ["alert", "analysis", "vitals", "presence"])
@pytest.mark.parametrize("payload", [b"\x00\x01", b"{}", b'{"type":"alert"}', b"[" * 10, b"x" * 600_000,
                                     json.dumps({"type": "vitals", "source": "w", "payload": {}}).encode()])
def test_malformed_messages_on_every_topic_are_counted_not_fatal(tmp_path: Path, kind: str, payload: bytes) -> None:
    bus = InMemoryBus()
    hub = _hub(tmp_path, bus)
    topic = topics.presence(SITE, "w") if kind == "presence" else topics.device(SITE, "pt-1", "w", kind)  # type: ignore[arg-type]
    bus.transport("x").publish(topic, payload)
    assert hub.counters.total("rejected.") == 1
    alert = factories.alert()
    _publish_alert(bus, alert)  # still alive and working
    assert len(_sent(bus, "cmd")) == 2


def test_device_state_is_kept_across_restarts_and_drill_vitals_are_not(tmp_path: Path) -> None:
    from shared.messages import PresenceMessage, PresencePayload, VitalsMessage, VitalsPayload

    bus = InMemoryBus()
    hub = _hub(tmp_path, bus)
    vitals = VitalsMessage(source="watch-1", patient_id="pt-1",
                           payload=VitalsPayload(hr_bpm=72.0, n_beats=12, window_s=10.0, stream_s=5.0))
    drill_vitals = VitalsMessage(source="watch-1", patient_id="pt-1", drill=True,
                                 payload=VitalsPayload(hr_bpm=190.0, n_beats=30, window_s=10.0, stream_s=6.0))
    presence = PresenceMessage(source="watch-1", patient_id="pt-1",
                               payload=PresencePayload(status="online", role="watch"))
    bus.transport("w").publish(topics.vitals(SITE, "pt-1", "watch-1"), encode(vitals), qos=0)
    bus.transport("w").publish(topics.vitals(SITE, "pt-1", "watch-1"), encode(drill_vitals), qos=0)
    bus.transport("w").publish(topics.presence(SITE, "watch-1"), encode(presence), retain=True)
    hub.stop()
    hub.store.close()
    revived = _hub(tmp_path, InMemoryBus())
    assert revived.latest_vitals["watch-1"] == vitals
    assert revived.presence["watch-1"] == "online"


def test_the_after_part_a_watch_streams_reaches_the_cloud_joined_to_its_alert_strip(tmp_path: Path) -> None:
    """Full disclosure: the edge asks for the stream, joins its chunks and sends them on, seamless with the
    alert strip (the watch streams from where that strip ended)."""
    from shared.ecg.signal import MODEL_FS
    from shared.ecg.sources import SyntheticEpisode, synthetic
    from shared.messages import DisclosureMessage
    from watch_agent.app import WatchAgent, WatchConfig
    from watch_agent.replay import Replay

    bus = InMemoryBus()
    hub = _hub(tmp_path, bus)
    signal = synthetic(90.0, MODEL_FS, episodes=[SyntheticEpisode("pause", 30.0, 4.0)], seed=3)
    watch = WatchAgent(Settings(site=SITE, data_dir=None, state_dir=tmp_path), bus.transport("watch-1"),
                       WatchConfig(device_id="watch-1", patient_id="pt-1", phone_id="phone-1", stream_ref="synthetic"),
                       Replay(signal, loop=False))
    watch.start(run=False)
    try:
        while (chunk := watch.replay.next_chunk()) is not None:
            watch.process(chunk)
        hub.send_disclosures(now_mono=time.monotonic() + 3600)  # whatever the timer has not sent yet
    finally:
        watch.stop()
        hub.stop()
    alerts = {m.payload.alert_id: m for m in _sent(bus, "alert")}
    [disclosure, *_] = _sent(bus, "disclosure")
    assert isinstance(disclosure, DisclosureMessage) and disclosure.payload.complete
    alert = alerts[disclosure.payload.alert_id]
    assert disclosure.trace_id == alert.trace_id and not disclosure.drill
    first = disclosure.payload.segments[0]
    strip = alert.payload.strip
    assert first.t0_s == pytest.approx(strip.t0_s + strip.duration_s, abs=1.5 / MODEL_FS)  # no gap, no overlap
    assert sum(s.duration_s for s in disclosure.payload.segments) >= 30.0 - 2.5
    assert hub.counters.get("strips.unrequested") == 0


def test_summaries_carry_each_patients_devices_and_heart_rate_minutes_never_drills(tmp_path: Path) -> None:
    from datetime import timedelta

    from shared.messages import PresenceMessage, PresencePayload, SummaryMessage, VitalsMessage, VitalsPayload, utcnow

    bus = InMemoryBus()
    hub = _hub(tmp_path, bus)
    watch = bus.transport("watch-9")
    start = utcnow().replace(second=0, microsecond=0) - timedelta(minutes=3)
    watch.publish(topics.presence(SITE, "watch-9"), encode(PresenceMessage(
        source="watch-9", patient_id="pt-9", payload=PresencePayload(status="online", role="watch"))))
    for i in range(120):  # two minutes at 1 Hz, and a drill in the middle that must not count
        vitals = VitalsMessage(source="watch-9", patient_id="pt-9", seq=i + 1, created_at=start + timedelta(seconds=i),
                               drill=i == 30, payload=VitalsPayload(hr_bpm=200.0 if i == 30 else 60.0 + i % 2,
                                                                    n_beats=10, window_s=10.0, stream_s=float(i)))
        watch.publish(topics.vitals(SITE, "pt-9", "watch-9"), encode(vitals), qos=0)
    try:
        assert hub.send_summaries() == 1
    finally:
        hub.stop()
    [summary, *_] = _sent(bus, "summary")
    assert isinstance(summary, SummaryMessage) and summary.patient_id == "pt-9" and not summary.drill
    [device] = summary.payload.devices
    assert (device.device_id, device.role, device.status) == ("watch-9", "watch", "online")
    assert [(m.minute, m.n, m.hr_max) for m in summary.payload.minutes] == [(start, 59, 61.0),
                                                                           (start + timedelta(minutes=1), 60, 61.0)]


def test_the_hub_times_each_alert_and_reports_its_open_episodes(tmp_path: Path) -> None:
    from shared.metrics import render

    bus = InMemoryBus()
    hub = _hub(tmp_path, bus)
    try:
        _publish_alert(bus, factories.alert(kind="wide_complex_run"))
        histograms, gauges = hub.counters.histograms(), hub.counters.gauges()
        text = render("edge-1", hub.counters)
    finally:
        hub.stop()
    assert histograms["alert_to_response_ms"].n == 1 and histograms["triage_ms"].n == 1
    assert histograms["alert_transit_ms"].n == 1
    assert gauges["open_episodes"] == 1  # waiting for the phone's findings
    assert 'cardiomesh_gauge{component="edge-1",name="open_episodes"} 1' in text


def test_the_inbox_and_outbox_gauges_count_both_connections(tmp_path: Path) -> None:
    """With alerts on their own connection, the emergency lane's depth and that connection's outbox are counted."""
    from shared.transport.memory import InMemoryTransport

    class Queued(InMemoryTransport):
        def __init__(self, bus: InMemoryBus, client_id: str, depth: dict[str, int], backlog: int) -> None:
            super().__init__(bus, client_id)
            self.depth, self.backlog = depth, backlog

        def inbox_depth(self) -> dict[str, int]:
            return self.depth

        def outbox_backlog(self) -> int:
            return self.backlog

    bus = InMemoryBus()
    lanes = ("emergency", "urgent", "routine", "training")
    main = Queued(bus, "edge", dict(zip(lanes, (0, 2, 40, 1), strict=True)), 3)
    fast = Queued(bus, "edge~emergency", dict(zip(lanes, (5, 1, 0, 0), strict=True)), 4)
    hub = EdgeHub(Settings(site=SITE, state_dir=tmp_path, edge_analysis=False), main, emergency_transport=fast,
                  store=EdgeStore(tmp_path / "edge.db"))
    hub.start()
    try:
        gauges = hub.counters.gauges()
        assert (gauges["inbox_emergency"], gauges["inbox_urgent"], gauges["inbox_routine"]) == (5, 3, 40)
        assert gauges["outbox_backlog"] == 7
    finally:
        hub.stop()
