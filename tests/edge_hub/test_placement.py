"""Where a strip is read (pure), and the hub acting on it: a phone known to be offline is not waited for."""

from __future__ import annotations

import time
from pathlib import Path

from edge_hub.app import EdgeHub
from edge_hub.placement import place_strip_analysis
from edge_hub.registry import DeviceRegistry
from edge_hub.store import EdgeStore
from shared import topics
from shared.messages import (
    CapabilitiesMessage,
    CapabilitiesPayload,
    EscalationMessage,
    PresenceMessage,
    PresencePayload,
    decode,
    encode,
)
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


def _phone(**kw: object) -> CapabilitiesPayload:
    base: dict[str, object] = {"role": "phone", "refresh_s": 30, "cores": 8, "cpu_util": 0.1, "mem_mb": 300,
                               "battery_pct": 70.0, "charging": False}
    return CapabilitiesPayload.model_validate(base | kw)


def test_a_phone_that_is_busy_saturated_or_low_on_battery_hands_the_strip_to_the_edge() -> None:
    online = {"phone-1": "online", "phone-2": "online"}

    def where(**caps: CapabilitiesPayload) -> tuple[str, str, str]:
        p = place_strip_analysis(list(caps), online, edge_can_read=True, capabilities=caps)
        return p.where, p.cause, p.reason

    assert where(**{"phone-1": _phone()})[0] == "phone"
    assert where(**{"phone-1": _phone(busy=True)})[:2] == ("edge", "busy")
    assert where(**{"phone-1": _phone(cpu_util=0.95)})[:2] == ("edge", "cpu")
    low = where(**{"phone-1": _phone(battery_pct=9.0)})
    assert low[:2] == ("edge", "battery") and "phone-1 battery 9 %" in low[2]
    assert where(**{"phone-1": _phone(battery_pct=9.0, charging=True)})[0] == "phone"  # on the charger: fine
    assert where(**{"phone-1": _phone(battery_pct=None, charging=None)})[0] == "phone"  # mains: no battery
    # one able phone of two is enough
    assert where(**{"phone-1": _phone(busy=True), "phone-2": _phone()})[0] == "phone"
    # a phone with no fresh capabilities is judged on its presence alone
    assert place_strip_analysis(["phone-1"], online, edge_can_read=True, capabilities={}).where == "phone"


def test_stale_capabilities_are_unknown_not_trusted() -> None:
    registry = DeviceRegistry()
    registry.update("phone-1", "pt", _phone(battery_pct=5.0, refresh_s=10), now=100.0)
    assert registry.get("phone-1", now=125.0) is not None
    assert registry.get("phone-1", now=131.0) is None  # silent for more than 3 refreshes
    assert registry.fresh(now=131.0) == {} and len(registry) == 1


TIMEOUT_S = 60.0


def _escalate_with(tmp_path: Path, phone_status: str, phone_caps: CapabilitiesPayload | None
                   ) -> tuple[EdgeHub, EscalationMessage, float]:
    """A hub whose watch has one phone (presence `phone_status`, retained capabilities `phone_caps`); the watch
    alerts: (the hub, its one escalation, seconds from alert to escalation)."""
    bus = InMemoryBus()
    settings = Settings(site=SITE, state_dir=tmp_path, analysis_timeout_s=TIMEOUT_S, edge_analysis=True)
    hub = EdgeHub(settings, bus.transport("edge"), store=EdgeStore(tmp_path / "edge.db"))
    hub.start()
    device = bus.transport("devices")
    for source, role, status, paired in (("watch-1", "watch", "online", ["phone-1"]),
                                         ("phone-1", "phone", phone_status, ["watch-1"])):
        device.publish(topics.presence(SITE, source), encode(PresenceMessage(
            source=source, patient_id="pt-p", payload=PresencePayload(status=status, role=role, paired_with=paired))))
    if phone_caps is not None:
        device.publish(topics.capabilities(SITE, "phone-1"), encode(CapabilitiesMessage(
            source="phone-1", patient_id="pt-p", payload=phone_caps)), retain=True)

    def escalations() -> list[EscalationMessage]:
        found = [decode(p, max_bytes=1 << 22) for t, p, *_ in bus.published if t.endswith("/escalation")]
        return [m for m in found if isinstance(m, EscalationMessage)]

    started = time.monotonic()
    try:
        device.publish(topics.alert(SITE, "pt-p", "watch-1"),
                       encode(factories.alert(kind="wide_complex_run", device="watch-1", patient="pt-p")))
        assert wait_until(lambda: bool(escalations()), 30), "no escalation"
        waited = time.monotonic() - started
    finally:
        hub.stop()
    [escalation] = escalations()
    assert escalation.payload.analysis is not None and escalation.payload.analysis.source == "edge-1"
    return hub, escalation, waited


def test_with_its_phone_offline_the_watchs_alert_is_read_at_the_edge_at_once(tmp_path: Path) -> None:
    hub, escalation, waited = _escalate_with(tmp_path, "offline", None)
    assert any("phone-1 offline: strip read at the edge" in r for r in escalation.payload.reasons)
    assert waited < TIMEOUT_S / 2  # not the 60 s wait for a phone that is gone
    assert hub.counters.get("placement.edge") == 1 and hub.counters.get("analysis.timeout") == 0


def test_with_its_phone_on_a_flat_battery_the_strip_is_read_at_the_edge_within_the_slo(tmp_path: Path) -> None:
    """The phone is online but says (retained capabilities over the bus) it has 6 % left and is not charging."""
    hub, escalation, waited = _escalate_with(tmp_path, "online", _phone(battery_pct=6.0))
    assert any("phone-1 battery 6 %" in r for r in escalation.payload.reasons)
    assert waited < TIMEOUT_S / 2
    assert hub.counters.get("placement.edge.battery") == 1 and hub.counters.get("capabilities.received") >= 1
