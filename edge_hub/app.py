"""The edge hub: fuses a site's devices per patient, triages, responds at once, escalates to the cloud.

Wiring only: decode (Router) → domain (fusion.triage) → encode/publish. The hub never waits on the
cloud: escalations go into the transport's durable outbox and the handler returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Literal, get_args

from edge_hub.disclosure import DisclosureCollector
from edge_hub.fusion import Decision, PatientContext, triage
from edge_hub.placement import place_strip_analysis
from edge_hub.registry import DeviceRegistry, follow
from edge_hub.shards import Shard
from edge_hub.store import EdgeStore, EpisodeRow, event_key
from edge_hub.trend import HrRollup
from shared import topics
from shared.capabilities import CapabilityReporter, OwnState
from shared.crypto.commands import signer_for
from shared.faults import crash_point
from shared.identity import Stamper
from shared.messages import (
    TRIAGE_ORDER,
    AlertMessage,
    AnalysisMessage,
    CommandMessage,
    CommandPayload,
    DeviceState,
    DisclosureMessage,
    DisclosurePayload,
    EscalationMessage,
    EscalationPayload,
    Hop,
    PresenceMessage,
    StripMessage,
    SummaryMessage,
    SummaryPayload,
    TriageMessage,
    TriagePayload,
    VitalsMessage,
    utcnow,
)
from shared.messages.device import Role
from shared.metrics import Counters
from shared.settings import Settings
from shared.transport import Router, Transport

log = logging.getLogger(__name__)

ROLES: tuple[str, ...] = get_args(Role)

CORROBORATION_WINDOW_S = 60.0
#: An alert that reaches the hub this long after the watch stamped it (a watch offline, its outbox
#: draining) is still triaged and answered, and says it is late everywhere it goes.
LATE_S = 60.0
#: Fault drills only (`shared.faults`): the hub dies (os._exit, no cleanup) at the named step of its work.
CRASH_POINTS = ("after_accept", "after_responses", "after_escalation")
#: Seconds of ECG the edge asks a watch to stream after an urgent or emergency alert (ADR 0002).
STREAM_S = 30.0
#: Each device's latest vitals reach the edge's store at most this often (in one transaction for all devices);
#: they seed the patient context after a restart, so seconds of staleness cost nothing clinical.
VITALS_SAVE_S = 5.0


def _with_late(decision: Decision, late_s: float | None) -> Decision:
    if late_s is None:
        return decision
    return Decision(decision.level, (*decision.reasons, f"late: reached the hub {late_s:.0f} s after the watch "
                                     "sent it"), decision.responses)


@dataclass(slots=True)
class _Device:
    """What the edge knows of a device for the patient view (sent to the cloud in each summary)."""

    patient_id: str
    role: str | None = None
    status: str = "unknown"
    last_seen: datetime | None = None


@dataclass(slots=True)
class _Pending:
    alert: AlertMessage
    received_mono: float
    initial_level: str
    hops: list[Hop] = field(default_factory=list)
    late_s: float | None = None


def _warm_up() -> None:
    from shared.analysis.strip import warm_up  # the analysis (torch, models) loads only when the edge reads

    warm_up()


def _lane_depth(inboxes: list[Callable[[], dict[str, int]]], lane: str) -> float:
    return float(sum(inbox()[lane] for inbox in inboxes))


def _total(reads: list[Callable[[], int]]) -> float:
    return float(sum(read() for read in reads))


class EdgeHub:
    def __init__(self, settings: Settings, transport: Transport, *, edge_id: str = "edge-1",
                 store: EdgeStore | None = None, counters: Counters | None = None,
                 registry: DeviceRegistry | None = None, emergency_transport: Transport | None = None) -> None:
        """`emergency_transport`: a second connection for alerts and the answers to them alone, so an alert
        never waits on a socket, a network thread or a dispatcher behind a flood of telemetry (bench/qos.py)."""
        self.settings = settings
        self.edge_id = edge_id
        self.counters = counters or Counters()
        self.router = Router(transport, counters=self.counters, max_bytes=settings.max_payload_bytes)
        #: alerts in, responses, acknowledgements and triage out: on their own connection when there is one
        self.fast = (Router(emergency_transport, counters=self.counters, max_bytes=settings.max_payload_bytes)
                     if emergency_transport is not None else self.router)
        self.store = store or EdgeStore(settings.state_dir / f"{edge_id}.db")
        self.stamp = Stamper(edge_id)
        #: commands are signed when this host was provisioned (watches holding commands.pub obey only these)
        self._signer = signer_for(settings.mqtt_credentials_dir, f"{settings.site}-{edge_id}")
        if settings.mqtt_credentials_dir is not None and self._signer is None:
            raise ValueError(f"provisioned ({settings.mqtt_credentials_dir}) but no {settings.site}-{edge_id}.cmdkey "
                             "there: provisioned watches obey only signed commands")
        self._lock = threading.RLock()
        self._pending: dict[str, _Pending] = {}
        self._closing: set[str] = set()  # overdue alerts being finalized (a strip read here takes a while)
        # strips the edge reads itself, one at a time, off the timer thread (≈ 0.1 s each, seconds at the first)
        self._analyser = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"{edge_id}-analysis")
        self._early: dict[str, AnalysisMessage] = {}
        self._recent_alerts: dict[tuple[str, bool], dict[str, float]] = defaultdict(dict)
        self.latest_vitals: dict[str, VitalsMessage] = {}
        self.presence: dict[str, str] = {}
        self.paired: dict[str, list[str]] = {}  # watch → its phones (from the watch's presence)
        self.registry = registry if registry is not None else DeviceRegistry()  # capabilities and load
        self.capabilities = CapabilityReporter(transport, site=settings.site, device_id=edge_id, patient_id=None,
                                               role="edge", state=self._own_state)
        self._read_here: dict[str, str] = {}  # alert → why the edge reads its strip at once (placement)
        # for the cloud (telemetry.md): the after-part of alert strips, and per-patient summaries
        self._disclosures = DisclosureCollector()
        self._trend = HrRollup()
        self._devices: dict[str, _Device] = {}
        self._next_summary = time.monotonic() + settings.summary_interval_s
        self._vitals_dirty: set[str] = set()
        self._next_vitals_save = time.monotonic() + VITALS_SAVE_S
        self._stop = threading.Event()
        self._timer: threading.Thread | None = None
        self.shard = Shard.parse(settings.edge_shard) if settings.edge_shard else None
        self._patients: set[str] = set()  # a sharded hub's patients (subscribed)

    def _subscribe_patient(self, patient: str) -> None:
        """The routes of one patient's devices (`+`: every patient, an unsharded hub)."""
        site, any_ = self.settings.site, topics.ANY
        self.fast.on(topics.alert(site, patient, any_), AlertMessage, self.on_alert)
        self.router.on(topics.analysis(site, patient, any_), AnalysisMessage, self.on_analysis)
        self.router.on(topics.vitals(site, patient, any_), VitalsMessage, self.on_vitals, qos=0)
        self.router.on(topics.strip(site, patient, any_), StripMessage, self.on_strip, qos=0)

    def _adopt(self, patient_id: str | None) -> bool:
        """A sharded hub takes a patient of its share (once): True when the patient is this hub's."""
        if self.shard is None:
            return True
        if not self.shard.owns(patient_id):
            return False
        assert patient_id is not None
        with self._lock:
            if patient_id in self._patients:
                return True
            self._patients.add(patient_id)
        self._subscribe_patient(patient_id)
        self.counters.inc("shard.patients")
        log.info("patient adopted by this hub", extra={"patient": patient_id, "shard": str(self.shard)})
        return True

    def _own_state(self) -> OwnState:
        """The edge's own load, for the site's other hubs and operators: busy while strips wait to be read."""
        queued = self._analyser._work_queue.qsize()
        return OwnState(busy=queued > 2, model_variants=["rhythm-reader"] if self.settings.edge_analysis else [])

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        site, any_ = self.settings.site, topics.ANY
        self._recover()  # before any route: a retried message must not race the recovery of its own episode
        if self.shard is None:
            self._subscribe_patient(any_)
        else:  # the patients it already knows at once; the rest as their devices announce themselves
            for patient_id in sorted({d.patient_id for d in self._devices.values()}):
                self._adopt(patient_id)
        self.router.on(topics.presence(site, any_), PresenceMessage, self.on_presence)
        follow(self.router, site, self.registry)
        self.counters.gauge("registered_devices", lambda: len(self.registry))
        self.counters.gauge("open_episodes", lambda: len(self._pending))
        self.counters.gauge("open_streams", lambda: len(self._disclosures))
        # both connections when alerts have their own: the emergency lane lives on that one
        connections = {id(r.transport): r.transport for r in (self.router, self.fast)}.values()
        backlogs = [b for c in connections if (b := getattr(c, "outbox_backlog", None)) is not None]
        if backlogs:
            self.counters.gauge("outbox_backlog", partial(_total, backlogs))
        inboxes = [i for c in connections if (i := getattr(c, "inbox_depth", None)) is not None]
        if inboxes:
            for lane in ("emergency", "urgent", "routine", "training"):
                self.counters.gauge(f"inbox_{lane}", partial(_lane_depth, inboxes, lane))
        self._timer = threading.Thread(target=self._timeout_loop, name=f"{self.edge_id}-timer", daemon=True)
        self._timer.start()
        if self.settings.edge_analysis:  # load the analysis and its models now, not when the first phone is silent
            self._analyser.submit(_warm_up)

    def stop(self) -> None:
        self._stop.set()
        if self._timer is not None:
            self._timer.join(timeout=2)
        try:  # what was gathered for the cloud leaves through the durable outbox before the routes close
            self.send_summaries(everything=True)
        except Exception:
            log.exception("final summaries not sent")
        try:
            self.save_vitals()
        except Exception:
            log.exception("latest vitals not saved")
        self.router.close()
        if self.fast is not self.router:
            self.fast.close()
        self._analyser.shutdown(wait=True, cancel_futures=False)

    def wait_idle(self, timeout_s: float = 30.0) -> None:
        """Until every strip the edge is reading itself has been read and its episode finalized (tests)."""
        self._analyser.submit(lambda: None).result(timeout=timeout_s)

    def _recover(self) -> None:
        """Reload device state, and finalize episodes accepted before a crash instead of forgetting them."""
        for device_id, role, status, vitals_json in self.store.devices():
            if status:
                self.presence[device_id] = status
            if vitals_json:
                vitals = VitalsMessage.model_validate_json(vitals_json)
                self.latest_vitals[device_id] = vitals
                if vitals.patient_id is not None:
                    self._devices[device_id] = _Device(vitals.patient_id, role, status or "unknown",
                                                       vitals.created_at)
        for row in self.store.open_episodes():
            alert = AlertMessage.model_validate_json(row.alert_json)
            hops = [Hop(name="watch_alert", source=alert.source, at=alert.created_at)]
            if not row.responded:  # killed between accepting the alert and answering it: answer now
                assert alert.patient_id is not None
                decision = triage(alert.payload, None, self._context(alert.patient_id, alert.source, alert.drill))
                self._respond(alert, decision, self.settings.site)
                self._publish_triage(alert, decision, stage="initial", analysis_received=False)
                self.store.mark_responded(row.alert_id)
                if not decision.responses:
                    self._acknowledge(alert)
                hops.append(Hop(name="edge_response", source=self.edge_id, at=utcnow()))
                self.counters.inc("recovered.responses")
                log.warning("recovered episode answered late", extra={"trace_id": row.trace_id})
            with self._lock:
                self._pending[row.alert_id] = _Pending(alert, row.received_mono, row.level, hops)
            if row.analysis_json:
                self._early[row.alert_id] = AnalysisMessage.model_validate_json(row.analysis_json)
            log.info("recovered open episode", extra={"trace_id": row.trace_id})

    # -- handlers --------------------------------------------------------------------------------
    def on_alert(self, parts: topics.TopicParts, msg: AlertMessage) -> None:
        started = time.perf_counter()
        received = utcnow()
        assert msg.patient_id is not None
        alert = msg.payload
        self.counters.observe("alert_transit_ms", max(0.0, (received - msg.created_at).total_seconds() * 1000))
        context = self._context(msg.patient_id, msg.source, msg.drill, record=False)
        late_s = self._late_s(msg, received)
        decided = time.perf_counter()
        decision = _with_late(triage(alert, None, context), late_s)
        self.counters.observe("triage_ms", (time.perf_counter() - decided) * 1000)
        accepted = self.store.accept_alert(msg.id, EpisodeRow(
            alert_id=alert.alert_id, patient_id=msg.patient_id, device_id=msg.source, trace_id=msg.trace_id,
            drill=msg.drill, alert_json=msg.model_dump_json(by_alias=True), analysis_json=None,
            level=decision.level, finalized=False, escalated=False, received_mono=time.monotonic(),
            received_at=time.time(), responded=False,
            event_key=event_key(patient_id=msg.patient_id, device_id=msg.source, kind=alert.kind,
                                onset_s=alert.onset_s, drill=msg.drill),
        ))
        crash_point("after_accept")
        hops = [Hop(name="watch_alert", source=msg.source, at=msg.created_at),
                Hop(name="edge_received", source=self.edge_id, at=received)]
        if accepted.outcome != "new":  # a redelivery, or the same event re-sent under a new message or alert id
            episode = accepted.alert_id
            if (episode == alert.alert_id and self.store.responded(episode) is False
                    and not self._is_pending(episode)):
                # its first delivery failed after the episode was committed (retried from dead letters)
                self.counters.inc("recovered.responses")
                self._answer(msg, decision, hops, late_s)
                return
            self._acknowledge(msg)  # the watch sent it again: it never heard the first answer
            self.counters.inc("duplicate.alert" if accepted.outcome == "duplicate" else "duplicate.alert_event")
            log.info("duplicate alert ignored", extra={"trace_id": msg.trace_id, "outcome": accepted.outcome,
                                                       "episode": episode})
            return
        self._context(msg.patient_id, msg.source, msg.drill)  # a new alert: it now corroborates others
        if late_s is not None:
            self.counters.inc("alerts.late")
            log.warning("late alert", extra={"trace_id": msg.trace_id, "late_s": round(late_s, 1)})
        self._answer(msg, decision, hops, late_s)
        self.counters.observe("alert_to_response_ms", (time.perf_counter() - started) * 1000)

    def _late_s(self, msg: AlertMessage, received: datetime) -> float | None:
        late = (received - msg.created_at).total_seconds()
        return late if late > LATE_S else None

    def _is_pending(self, alert_id: str) -> bool:
        with self._lock:
            return alert_id in self._pending

    def _answer(self, msg: AlertMessage, decision: Decision, hops: list[Hop], late_s: float | None = None) -> None:
        """The initial responses and triage, recorded as sent; then the episode waits for findings."""
        alert = msg.payload
        self._respond(msg, decision, self.settings.site)
        hops.append(Hop(name="edge_response", source=self.edge_id, at=utcnow()))
        self._publish_triage(msg, decision, stage="initial", analysis_received=False)
        crash_point("after_responses")
        self.store.mark_responded(alert.alert_id)
        if not decision.responses:  # a response names the alert: it is the watch's acknowledgement
            self._acknowledge(msg)
        self.counters.inc("alerts.drill" if msg.drill else "alerts.clinical")
        log.info("alert triaged", extra={"trace_id": msg.trace_id, "kind": alert.kind, "level": decision.level,
                                          "drill": msg.drill})
        with self._lock:
            self._pending[alert.alert_id] = _Pending(msg, time.monotonic(), decision.level, hops, late_s)
            early = self._early.pop(alert.alert_id, None)
        if early is not None:
            self._finalize(alert.alert_id, early)
            return
        placement = place_strip_analysis(self.paired.get(msg.source, []), self.presence,
                                         edge_can_read=self.settings.edge_analysis,
                                         capabilities=self.registry.fresh())
        if placement.where == "edge":  # no phone to wait for: read the strip here now
            with self._lock:
                self._closing.add(alert.alert_id)  # the timer leaves it alone
                self._read_here[alert.alert_id] = placement.reason
            self.counters.inc("placement.edge")
            self.counters.inc(f"placement.edge.{placement.cause}")
            log.info("strip read at the edge at once", extra={"trace_id": msg.trace_id, "reason": placement.reason})
            self._analyser.submit(self._analyse_and_finalize, alert.alert_id)

    def on_analysis(self, parts: topics.TopicParts, msg: AnalysisMessage) -> None:
        alert_id = self.store.episode_of(msg.payload.alert_id)  # findings for a re-sent event: its one episode
        if not self.store.accept_analysis(msg.id, msg.payload.alert_id, msg.model_dump_json(by_alias=True)):
            if self._is_pending(alert_id) and self.store.responded(alert_id) is not None:
                # stored before, but finalizing with it failed (retried from dead letters): finish it now
                self.counters.inc("recovered.finalize")
                self._finalize(alert_id, msg)
                return
            self.counters.inc("duplicate.analysis")
            return
        with self._lock:
            known = alert_id in self._pending
        if known:
            self._finalize(alert_id, msg)
        elif self.store.finalized(alert_id):  # stored with its episode; the triage was already final
            self.counters.inc("analysis.after_final")
        else:
            with self._lock:
                self._early[alert_id] = msg  # findings overtook their alert
            self.counters.inc("analysis.unmatched")

    def on_vitals(self, parts: topics.TopicParts, msg: VitalsMessage) -> None:
        self._seen(msg.source, msg.patient_id, msg.created_at)
        if not msg.drill:  # drills never become the patient's state
            with self._lock:
                self.latest_vitals[msg.source] = msg
                self._vitals_dirty.add(msg.source)  # persisted in batches by the timer (save_vitals)
                if msg.patient_id is not None:
                    self._trend.add(msg.patient_id, msg.source, msg.created_at, msg.payload.hr_bpm,
                                    msg.payload.signal_ok)

    def on_presence(self, parts: topics.TopicParts, msg: PresenceMessage) -> None:
        if self.shard is not None and not self._adopt(msg.patient_id):
            return  # another hub's patient (or a service's own presence): not this hub's state
        self.presence[msg.source] = msg.payload.status
        if msg.payload.role == "watch":
            self.paired[msg.source] = list(msg.payload.paired_with)
        self.store.save_presence(msg.source, msg.patient_id, msg.payload.role, msg.payload.status)
        self._seen(msg.source, msg.patient_id, msg.created_at, role=msg.payload.role, status=msg.payload.status)

    def on_strip(self, parts: topics.TopicParts, msg: StripMessage) -> None:
        """A chunk of a stream the edge asked for: kept for the episode's full disclosure."""
        self._seen(msg.source, msg.patient_id, msg.created_at)
        with self._lock:
            kept = self._disclosures.add(msg.payload.alert_id, msg.source, msg.payload.strip)
        self.counters.inc("strips.kept" if kept else "strips.unrequested")

    def _seen(self, device_id: str, patient_id: str | None, at: datetime, *, role: str | None = None,
              status: str | None = None) -> None:
        if patient_id is None:
            return
        with self._lock:
            device = self._devices.setdefault(device_id, _Device(patient_id))
            device.patient_id = patient_id
            device.last_seen = at if device.last_seen is None else max(device.last_seen, at)
            device.role = role or device.role
            if status is not None:
                device.status = status
            elif device.status == "unknown":
                device.status = "online"  # it is talking, whatever its retained presence said (or not) yet

    # -- domain glue -----------------------------------------------------------------------------
    def _context(self, patient_id: str, device_id: str, drill: bool, *, record: bool = True) -> PatientContext:
        """Other devices of this patient alerting recently; drills only ever corroborate drills. `record`: this
        device is alerting now (not for a duplicate, which must not refresh its corroboration)."""
        now = time.monotonic()
        with self._lock:
            recent = self._recent_alerts[(patient_id, drill)]
            for dev, at in list(recent.items()):
                if now - at > CORROBORATION_WINDOW_S:
                    del recent[dev]
            others = sum(1 for dev in recent if dev != device_id)
            if record:
                recent[device_id] = now
        return PatientContext(other_devices_alerting=others)

    def _respond(self, msg: AlertMessage, decision: Decision, site: str) -> None:
        assert msg.patient_id is not None
        for command in decision.responses:
            cmd = CommandMessage(
                **self.stamp(patient_id=msg.patient_id, trace_id=msg.trace_id, drill=msg.drill),
                payload=CommandPayload(command=command, alert_id=msg.payload.alert_id, level=decision.level,
                                       duration_s=STREAM_S if command == "stream_strip" else None,
                                       target=msg.source),
            )
            if self._signer is not None:
                cmd = self._signer.sign(cmd)
            if command == "stream_strip":
                with self._lock:
                    self._disclosures.open(alert_id=msg.payload.alert_id, device_id=msg.source,
                                           patient_id=msg.patient_id, trace_id=msg.trace_id, drill=msg.drill,
                                           expected_s=STREAM_S, now_mono=time.monotonic())
            self.fast.publish(topics.cmd(site, msg.patient_id, msg.source), cmd, qos=1)
            self.counters.inc("responses")

    def _acknowledge(self, msg: AlertMessage) -> None:
        """Tell the watch its alert is held, so it stops sending it again (watch_agent.awaiting): for an alert
        that needs no response (any command naming the alert acknowledges it), and for every copy that
        arrives again, as the watch may have missed the first answer."""
        assert msg.patient_id is not None
        ack = CommandMessage(
            **self.stamp(patient_id=msg.patient_id, trace_id=msg.trace_id, drill=msg.drill),
            payload=CommandPayload(command="alert_received", alert_id=msg.payload.alert_id, target=msg.source))
        if self._signer is not None:
            ack = self._signer.sign(ack)
        self.fast.publish(topics.cmd(self.settings.site, msg.patient_id, msg.source), ack, qos=1)
        self.counters.inc("acks")

    def _publish_triage(self, msg: AlertMessage, decision: Decision, *, stage: Literal["initial", "final"],
                        analysis_received: bool) -> None:
        assert msg.patient_id is not None
        triage_msg = TriageMessage(
            **self.stamp(patient_id=msg.patient_id, trace_id=msg.trace_id, drill=msg.drill),
            payload=TriagePayload(alert_id=msg.payload.alert_id, level=decision.level, stage=stage,
                                  reasons=list(decision.reasons), responses=list(decision.responses),
                                  analysis_received=analysis_received),
        )
        self.fast.publish(topics.triage(self.settings.site, msg.patient_id, self.edge_id), triage_msg, qos=1)

    def _finalize(self, alert_id: str, analysis: AnalysisMessage | None) -> None:
        with self._lock:
            pending = self._pending.pop(alert_id, None)
        if pending is None:
            return
        try:
            self._finalize_pending(alert_id, pending, analysis)
        except Exception:
            with self._lock:  # not finalized: the episode waits again (for a retry, or the timer)
                self._pending.setdefault(alert_id, pending)
            raise

    def _finalize_pending(self, alert_id: str, pending: _Pending, analysis: AnalysisMessage | None) -> None:
        msg = pending.alert
        assert msg.patient_id is not None
        context = self._context(msg.patient_id, msg.source, msg.drill, record=False)
        decision = _with_late(triage(msg.payload, analysis.payload if analysis else None, context), pending.late_s)
        with self._lock:
            why = self._read_here.pop(alert_id, None)
        if analysis is None:
            decision = Decision(decision.level, (*decision.reasons, "no phone findings in time"), decision.responses)
        elif analysis.source == self.edge_id:
            reasons = (*decision.reasons, f"{why}: strip read at the edge" if why
                       else "no phone findings in time: strip read at the edge")
            decision = Decision(decision.level, reasons, decision.responses)
        if TRIAGE_ORDER[decision.level] > TRIAGE_ORDER[pending.initial_level] and pending.initial_level == "info":
            self._respond(msg, decision, self.settings.site)
        hops = list(pending.hops)
        if analysis is not None:
            name = "edge_analysis" if analysis.source == self.edge_id else "phone_analysis"
            hops.append(Hop(name=name, source=analysis.source, at=analysis.created_at))
        self._publish_triage(msg, decision, stage="final", analysis_received=analysis is not None)
        hops.append(Hop(name="edge_triage", source=self.edge_id, at=utcnow()))
        if decision.escalate:
            escalation = EscalationMessage(
                **self.stamp(patient_id=msg.patient_id, trace_id=msg.trace_id, drill=msg.drill),
                payload=EscalationPayload(alert_id=alert_id, site=self.settings.site, level=decision.level,
                                          reasons=list(decision.reasons), alert=msg, analysis=analysis,
                                          triage=TriagePayload(alert_id=alert_id, level=decision.level,
                                                               stage="final", reasons=list(decision.reasons),
                                                               responses=list(decision.responses),
                                                               analysis_received=analysis is not None),
                                          hops=hops),
            )
            self.router.publish(topics.escalation(self.settings.site, msg.patient_id, self.edge_id), escalation)
            crash_point("after_escalation")
            self.counters.inc("escalations")
        self.store.finalize(alert_id, decision.level, decision.escalate)
        log.info("episode finalized", extra={"trace_id": msg.trace_id, "level": decision.level,
                                             "escalated": decision.escalate, "with_analysis": analysis is not None})

    def _timeout_loop(self) -> None:
        while not self._stop.wait(0.1):
            for step in (self.finalize_overdue, self.send_disclosures, self.send_summaries_when_due,
                         self.save_vitals_when_due, self.capabilities.tick):
                try:
                    step()
                except Exception:  # the timer must outlive any one bad episode or message
                    self.counters.inc("finalize.failed" if step == self.finalize_overdue else "telemetry.failed")
                    log.exception("timer step failed", extra={"step": step.__name__})

    # -- for the cloud: full disclosure and summaries --------------------------------------------
    def send_disclosures(self, now_mono: float | None = None) -> int:
        """Every finished stream to the cloud as one DisclosureMessage (QoS 1, the durable outbox)."""
        with self._lock:
            due = self._disclosures.due(time.monotonic() if now_mono is None else now_mono)
        for collection, segments, complete in due:
            if not segments:
                self.counters.inc("disclosures.empty")
                continue
            message = DisclosureMessage(
                **self.stamp(patient_id=collection.patient_id, trace_id=collection.trace_id, drill=collection.drill),
                payload=DisclosurePayload(alert_id=collection.alert_id, device_id=collection.device_id,
                                          segments=segments[:64], complete=complete and len(segments) <= 64,
                                          expected_s=collection.expected_s))
            self.router.publish(topics.disclosure(self.settings.site, collection.patient_id, self.edge_id), message,
                                qos=1)
            self.counters.inc("disclosures.sent" if complete else "disclosures.partial")
            log.info("full disclosure sent", extra={"trace_id": collection.trace_id, "segments": len(segments),
                                                    "complete": complete})
        return len(due)

    def save_vitals_when_due(self) -> int:
        if time.monotonic() < self._next_vitals_save:
            return 0
        self._next_vitals_save = time.monotonic() + VITALS_SAVE_S
        return self.save_vitals()

    def save_vitals(self) -> int:
        """Every device's latest vitals received since the last save, in one transaction."""
        with self._lock:  # only the snapshot under the lock: an alert must not wait for 1,000 serialisations
            dirty, self._vitals_dirty = self._vitals_dirty, set()
            latest = [(d, self.latest_vitals[d]) for d in dirty if d in self.latest_vitals]
        rows = [(d, v.patient_id, v.model_dump_json(by_alias=True)) for d, v in latest]
        if rows:
            try:
                self.store.save_vitals_many(rows)
            except Exception:
                with self._lock:
                    self._vitals_dirty |= dirty  # tried again at the next save
                raise
        return len(rows)

    def send_summaries_when_due(self) -> int:
        if time.monotonic() < self._next_summary:
            return 0
        self._next_summary = time.monotonic() + self.settings.summary_interval_s
        return self.send_summaries()

    def send_summaries(self, *, everything: bool = False, now: datetime | None = None) -> int:
        """One SummaryMessage per patient: their devices and the heart-rate minutes closed since the last one
        (`everything`: the open minutes too, at shutdown). Drills never enter a summary."""
        with self._lock:
            minutes = self._trend.drain(now or utcnow(), everything=everything)
            by_patient: dict[str, list[DeviceState]] = defaultdict(list)
            for device_id, d in self._devices.items():
                by_patient[d.patient_id].append(DeviceState(
                    device_id=device_id, role=d.role if d.role in ROLES else None,
                    status=d.status if d.status in ("online", "offline") else "unknown", last_seen=d.last_seen))
        sent = 0
        for patient_id in sorted(set(by_patient) | set(minutes)):
            rows = minutes.get(patient_id, [])
            for start in range(0, max(len(rows), 1), 2_000):
                message = SummaryMessage(**self.stamp(patient_id=patient_id), payload=SummaryPayload(
                    devices=by_patient.get(patient_id, [])[:64],
                    minutes=rows[start:start + 2_000]))
                self.router.publish(topics.summary(self.settings.site, patient_id, self.edge_id), message, qos=1)
                sent += 1
        self.counters.inc("summaries", sent)
        return sent

    def finalize_overdue(self, now: float | None = None) -> None:
        now = time.monotonic() if now is None else now
        with self._lock:
            overdue = [a for a, p in self._pending.items()
                       if now - p.received_mono >= self.settings.analysis_timeout_s and a not in self._closing]
            self._closing.update(overdue)  # the timer thread and a caller never finalize one alert twice
        for alert_id in overdue:
            self.counters.inc("analysis.timeout")
            analysis = self._early.pop(alert_id, None)
            if analysis is None and self.settings.edge_analysis:
                self._analyser.submit(self._analyse_and_finalize, alert_id)
            else:
                self._close(alert_id, analysis)

    def _close(self, alert_id: str, analysis: AnalysisMessage | None) -> None:
        """Finalize one overdue episode; a failure is logged and counted, never the end of the timer."""
        try:
            self._finalize(alert_id, analysis)
        except Exception:
            self.counters.inc("finalize.failed")
            log.exception("finalizing an episode failed", extra={"alert_id": alert_id})
        finally:
            with self._lock:
                self._closing.discard(alert_id)

    def _analyse_and_finalize(self, alert_id: str) -> None:
        self._close(alert_id, self._analyse_here(alert_id))

    def _analyse_here(self, alert_id: str) -> AnalysisMessage | None:
        """The phone stayed silent: read the strip here with the shared analysis (the same code and reader).

        Marked as the edge's own (source = edge id, method notes it), so the report and the audit can tell.
        """
        with self._lock:
            pending = self._pending.get(alert_id)
        if pending is None:
            return None
        msg = pending.alert
        try:
            from shared.analysis.payload import to_payload
            from shared.analysis.strip import analyze_strip

            strip = msg.payload.strip
            payload = to_payload(alert_id, analyze_strip(strip.to_mv(), strip.fs))
            payload = payload.model_copy(update={"method": f"edge:{payload.method}"[:64]})
        except Exception:
            log.exception("edge analysis failed", extra={"trace_id": msg.trace_id})
            self.counters.inc("analysis.edge_failed")
            return None
        self.counters.inc("analysis.edge")
        log.info("strip analysed at the edge", extra={"trace_id": msg.trace_id, "rhythm": payload.rhythm})
        return AnalysisMessage(**self.stamp(patient_id=msg.patient_id, trace_id=msg.trace_id, drill=msg.drill),
                               payload=payload)

    def __repr__(self) -> str:
        return f"EdgeHub({self.edge_id!r}, site={self.settings.site!r}, open={len(self._pending)})"
