"""The paired phone: on its watch's alert, analyse the strip locally and publish the findings.

Wiring only (decode → `analysis.analyze_strip` → publish). A `PhoneFleet` runs many phones in one
process, each with its own connection, discovering its watch from the watch's retained presence.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from shared import topics
from shared.analysis.payload import to_payload
from shared.analysis.strip import analyze_strip, warm_up
from shared.capabilities import CapabilityReporter, OwnState, SimulatedBattery
from shared.identity import Stamper
from shared.messages import AlertMessage, AnalysisMessage, PresenceMessage, PresencePayload, encode
from shared.metrics import Counters
from shared.recent import RecentKeys
from shared.settings import Settings
from shared.transport import Router, Transport, Will

log = logging.getLogger(__name__)

_SEEN_MAX = 4096


class PhoneAgent:
    def __init__(self, settings: Settings, transport: Transport, *, phone_id: str, watch_id: str,
                 patient_id: str, counters: Counters | None = None, battery: SimulatedBattery | None = None) -> None:
        self.settings = settings
        self.phone_id, self.watch_id, self.patient_id = phone_id, watch_id, patient_id
        self.transport = transport
        self.counters = counters or Counters()
        self.router = Router(transport, counters=self.counters, max_bytes=settings.max_payload_bytes)
        self.stamp = Stamper(phone_id)
        self._seen = RecentKeys(_SEEN_MAX)
        self.battery = battery or SimulatedBattery(pct=70.0, drain_pct_per_h=3.0)
        self._reading = 0  # strips being read now: a phone busy reading says so
        self._last_ms: float | None = None
        self.capabilities = CapabilityReporter(transport, site=settings.site, device_id=phone_id,
                                               patient_id=patient_id, role="phone", state=self._own_state)

    def _own_state(self) -> OwnState:
        """Busy: reading a strip with more alerts waiting behind it (the edge would wait for them in turn)."""
        inbox = getattr(self.transport, "inbox_depth", None)
        waiting = inbox()["emergency"] if callable(inbox) else 0
        return OwnState(battery=self.battery, inference_ms=self._last_ms, busy=self._reading > 0 and waiting > 0,
                        model_variants=["rhythm-reader"], active_variant="rhythm-reader")

    def start(self) -> None:
        self.router.on(topics.alert(self.settings.site, self.patient_id, self.watch_id), AlertMessage, self.on_alert)

    def stop(self) -> None:
        """Close the routes and their retry thread (kept messages stay in the store for the next run)."""
        self.router.close()

    def on_alert(self, parts: topics.TopicParts, msg: AlertMessage) -> None:
        if msg.id in self._seen:
            self.counters.inc("duplicate.alert")
            return
        strip = msg.payload.strip
        self._reading += 1
        try:
            result = analyze_strip(strip.to_mv(), strip.fs)
        finally:
            self._reading -= 1
        self._last_ms = round(result.analysis_ms, 1)
        out = AnalysisMessage(**self.stamp(patient_id=self.patient_id, trace_id=msg.trace_id, drill=msg.drill),
                              payload=to_payload(msg.payload.alert_id, result))
        self.router.publish(topics.analysis(self.settings.site, self.patient_id, self.phone_id), out, qos=1)
        # seen only once the findings are out: a failure before that is retried, not dropped as a duplicate
        self._seen.add(msg.id)
        self.counters.inc("analyses")
        self.counters.observe("analysis_ms", result.analysis_ms)
        log.info("strip analysed", extra={"trace_id": msg.trace_id, "rhythm": result.rhythm,
                                          "quality": result.quality, "ms": round(result.analysis_ms, 1)})


class PhoneFleet:
    """Phones for every watch that announces one as its pair (retained presence), up to `limit`."""

    def __init__(self, settings: Settings, make_transport: Callable[[str, Will | None, Will | None], Transport],
                 *, limit: int | None = None, counters: Counters | None = None) -> None:
        self.settings = settings
        self._make_transport = make_transport
        self.limit = limit
        self.counters = counters or Counters()
        self.phones: dict[str, tuple[PhoneAgent, Transport]] = {}
        self._lock = threading.Lock()
        self._discovery: Transport | None = None
        self._discovery_router: Router | None = None
        self._stop = threading.Event()
        self._ticker: threading.Thread | None = None

    def start(self) -> None:
        """Load the analysis first, then look for watches: a phone that pairs before its models are loaded
        answers its first alert seconds late, after the edge has finalized it without findings."""
        log.info("analysis ready", extra={"warm_up_s": round(warm_up(), 2)})
        self._discovery = self._make_transport(f"phone-discovery-{self.settings.site}", None, None)
        router = self._discovery_router = Router(self._discovery, counters=self.counters,
                                                 max_bytes=self.settings.max_payload_bytes)
        router.on(topics.presence(self.settings.site, topics.ANY), PresenceMessage, self.on_presence)
        self._discovery.start()
        self._ticker = threading.Thread(target=self._tick_loop, name="phone-capabilities", daemon=True)
        self._ticker.start()

    def _tick_loop(self) -> None:
        """One thread refreshes every phone's capabilities (each when due)."""
        while not self._stop.wait(1.0):
            with self._lock:
                phones = [phone for phone, _ in self.phones.values()]
            for phone in phones:
                phone.capabilities.tick()

    def on_presence(self, parts: topics.TopicParts, msg: PresenceMessage) -> None:
        if msg.payload.role != "watch" or msg.payload.status != "online" or msg.patient_id is None:
            return
        for phone_id in msg.payload.paired_with:
            self.ensure_phone(phone_id, msg.source, msg.patient_id)

    def ensure_phone(self, phone_id: str, watch_id: str, patient_id: str) -> None:
        """A phone for `phone_id`, paired with the watch's *current* patient: a watch that comes back as
        another patient gets its phone re-paired (its old subscription and presence go)."""
        with self._lock:
            current = self.phones.get(phone_id)
            if current is not None:
                old, transport = current
                if (old.watch_id, old.patient_id) == (watch_id, patient_id):
                    return
                old.stop()
                transport.stop()
                del self.phones[phone_id]
                self.counters.inc("phones.repaired")
                log.info("phone re-paired", extra={"phone": phone_id, "watch": watch_id})
            elif self.limit is not None and len(self.phones) >= self.limit:
                return
            presence = topics.presence(self.settings.site, phone_id)

            def _presence(status: str) -> bytes:
                return encode(PresenceMessage(source=phone_id, patient_id=patient_id,
                                              payload=PresencePayload(status=status, role="phone",
                                                                      paired_with=[watch_id])))

            transport = self._make_transport(phone_id, Will(presence, _presence("offline")),
                                             Will(presence, _presence("online")))
            phone = PhoneAgent(self.settings, transport, phone_id=phone_id, watch_id=watch_id,
                               patient_id=patient_id, counters=self.counters)
            phone.start()
            transport.start()
            phone.capabilities.tick()
            self.phones[phone_id] = (phone, transport)
        log.info("phone paired", extra={"phone": phone_id, "watch": watch_id})

    def stop(self) -> None:
        self._stop.set()
        with self._lock:
            for phone, transport in self.phones.values():
                phone.stop()
                transport.stop()
            if self._discovery_router is not None:
                self._discovery_router.close()
            if self._discovery is not None:
                self._discovery.stop()
