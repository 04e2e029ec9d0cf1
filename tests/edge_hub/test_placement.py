"""Where a strip is read (pure), and the hub acting on it: a phone known to be offline is not waited for."""

from __future__ import annotations

import time
from pathlib import Path

from edge_hub.app import EdgeHub
from edge_hub.placement import place_strip_analysis
from edge_hub.store import EdgeStore
from shared import topics
from shared.messages import EscalationMessage, PresenceMessage, PresencePayload, decode, encode
from shared.settings import Settings
from shared.transport import InMemoryBus
from tests import factories
from tests.waiting import wait_until

SITE = "home-p"


def test_the_edge_reads_only_when_every_paired_phone_is_known_to_be_gone() -> None:
    offline = {"phone-1": "offline", "phone-2": "offline", "phone-3": "online"}
    assert place_strip_analysis(["phone-1"], offline, edge_can_read=True).where == "edge"
    assert place_strip_analysis(["phone-1", "phone-2"], offline, edge_can_read=True).where == "edge"
    assert place_strip_analysis(["phone-1", "phone-3"], offline, edge_can_read=True).where == "phone"
    assert place_strip_analysis(["phone-9"], offline, edge_can_read=True).where == "phone"  # never heard of
    assert place_strip_analysis([], offline, edge_can_read=True).where == "phone"
    assert place_strip_analysis(["phone-1"], offline, edge_can_read=False).where == "phone"
    assert "phone-1 offline" in place_strip_analysis(["phone-1"], offline, edge_can_read=True).reason


def test_with_its_phone_offline_the_watchs_alert_is_read_at_the_edge_at_once(tmp_path: Path) -> None:
    bus = InMemoryBus()
    settings = Settings(site=SITE, state_dir=tmp_path, analysis_timeout_s=60.0, edge_analysis=True)
    hub = EdgeHub(settings, bus.transport("edge"), store=EdgeStore(tmp_path / "edge.db"))
    hub.start()
    device = bus.transport("devices")
    for source, role, status, paired in (("watch-1", "watch", "online", ["phone-1"]),
                                         ("phone-1", "phone", "offline", ["watch-1"])):
        device.publish(topics.presence(SITE, source), encode(PresenceMessage(
            source=source, patient_id="pt-p", payload=PresencePayload(status=status, role=role, paired_with=paired))))
    alert = factories.alert(kind="wide_complex_run", device="watch-1", patient="pt-p")
    started = time.monotonic()
    try:
        device.publish(topics.alert(SITE, "pt-p", "watch-1"), encode(alert))

        def escalations() -> list[EscalationMessage]:
            found = [decode(p, max_bytes=1 << 22) for t, p, *_ in bus.published if t.endswith("/escalation")]
            return [m for m in found if isinstance(m, EscalationMessage)]

        assert wait_until(lambda: bool(escalations()), 30), "no escalation"
        waited = time.monotonic() - started
    finally:
        hub.stop()
    [escalation] = escalations()
    assert escalation.payload.analysis is not None and escalation.payload.analysis.source == "edge-1"
    assert any("phone-1 offline: strip read at the edge" in r for r in escalation.payload.reasons)
    assert waited < settings.analysis_timeout_s / 2  # not the 60 s wait for a phone that is gone
    assert hub.counters.get("placement.edge") == 1 and hub.counters.get("analysis.timeout") == 0
