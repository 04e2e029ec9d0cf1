"""The wearable: replay ECG, detect on the device, publish vitals and alerts, obey commands.

Wiring only. The replay thread feeds chunks to the detector (`detector.py`); each event becomes an
`AlertMessage` with the strip around it. Commands from the edge (notify, stream strips) and drills
(splice an episode into the live stream) arrive on the watch's `cmd` topic.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections import OrderedDict, deque
from dataclasses import dataclass, replace

import numpy as np

from shared import topics
from shared.capabilities import REFRESH_S, CapabilityReporter, OwnState, SimulatedBattery
from shared.crypto.commands import verifier_for
from shared.ecg.drill import drill_segment
from shared.identity import Stamper
from shared.messages import (
    AlertMessage,
    AlertPayload,
    CommandMessage,
    EcgStrip,
    PresenceMessage,
    PresencePayload,
    StripMessage,
    StripPayload,
    VitalsMessage,
    VitalsPayload,
    encode,
    new_id,
)
from shared.metrics import Counters
from shared.recent import RecentKeys
from shared.settings import Settings
from shared.transport import Router, Transport, Will
from watch_agent.awaiting import AwaitingAnswers
from watch_agent.detector import Detector, DetectorEvent, make_detector
from watch_agent.replay import Chunk, Replay

log = logging.getLogger(__name__)

RESEND_POLL_S = 1.0  # how often unanswered alerts are looked at (each waits 30 s, 60 s, … before a resend)
DRILL_GRACE_S = 12.0  # stream seconds after a splice during which alerts still belong to the drill


@dataclass(frozen=True, slots=True)
class WatchConfig:
    device_id: str
    patient_id: str
    phone_id: str | None = None
    detector: str = "baseline"
    strip_pre_s: float = 10.0
    strip_min_s: float = 10.0
    strip_max_s: float = 30.0
    vitals_every_s: float = 1.0
    stream_ref: str | None = None
    rhythm_reader: bool = False  # read the alert strip with the shared rhythm reader before sending (evidence)
    battery_pct: float = 80.0  # a replayed watch simulates its battery (capabilities; training selection)
    charging: bool = False
    capabilities_every_s: float = REFRESH_S


def presence_wills(site: str, config: WatchConfig) -> tuple[Will, Will]:
    def _msg(status: str) -> bytes:
        return encode(PresenceMessage(
            source=config.device_id, patient_id=config.patient_id,
            payload=PresencePayload(status=status, role="watch",
                                    paired_with=[config.phone_id] if config.phone_id else []),
        ))

    topic = topics.presence(site, config.device_id)
    return Will(topic, _msg("offline")), Will(topic, _msg("online"))


def reader_evidence(samples: np.ndarray, fs: float) -> dict[str, float]:
    """The shared rhythm reader's calibrated probabilities on the alert strip, as `reader_p_<class>` evidence.

    Optional (`WatchConfig.rhythm_reader`): it adds the reader's time (≈ 10–20 ms per strip here) before the
    alert leaves, so by default the watch sends at once and the phone reads the strip. Empty when no reader
    file is installed or the strip is too short.
    """
    from shared.model.rhythm.reader import MIN_STRIP_S, active_reader

    reader = active_reader()
    if reader is None or len(samples) < MIN_STRIP_S * fs:
        return {}
    try:
        reading = reader.read(samples, fs)
    except Exception:  # the alert goes out without the reader's view rather than not at all
        log.exception("rhythm reader failed on the watch")
        return {}
    return {f"reader_p_{k}": round(v, 3) for k, v in reading.probabilities.items()}


class WatchAgent:
    def __init__(self, settings: Settings, transport: Transport, config: WatchConfig, replay: Replay, *,
                 detector: Detector | None = None, counters: Counters | None = None,
                 awaiting: AwaitingAnswers | None = None) -> None:
        """`awaiting`: where sent alerts wait for their edge's answer (durable under state_dir in a deployment,
        in memory by default)."""
        self.settings = settings
        self.config = config
        self.replay = replay
        self.fs = replay.fs
        self.detector = detector or make_detector(config.detector, self.fs)
        self.counters = counters or Counters()
        self.router = Router(transport, counters=self.counters, max_bytes=settings.max_payload_bytes)
        self.stamp = Stamper(config.device_id)
        self._verifier = verifier_for(settings.mqtt_credentials_dir)  # None: not provisioned, commands unchecked
        if settings.mqtt_credentials_dir is not None and self._verifier is None:
            raise ValueError(f"provisioned ({settings.mqtt_credentials_dir}) but no commands.pub there: a watch "
                             "must know whose commands to obey (cardiomesh provision writes it)")
        keep = int((config.strip_max_s + config.strip_pre_s + 5) * self.fs)
        self._buffer: deque[np.ndarray] = deque()
        self._buffer_len = 0
        self._buffer_keep = keep
        self._buffer_end = 0  # absolute sample index one past the newest buffered sample
        self._next_vitals_s = 0.0
        self._drill_trace: str | None = None
        self._drill_until_s = -1.0
        self._detector_since_s = 0.0  # stream time the detector last started afresh
        self._stream_until_s = -1.0
        self._stream_alert: str | None = None
        self._next_strip_s = 0.0
        self._stream_from_s = 0.0  # the next streamed chunk starts here: the stream is seamless
        self._alert_ends: OrderedDict[str, float] = OrderedDict()  # alert id → end of its strip (stream time)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.wearer_notifications = 0
        #: (alert_id, command) already obeyed: commands are at-least-once (ADR 0011), the wearer hears once
        self._obeyed = RecentKeys(1024)
        self.awaiting = awaiting if awaiting is not None else AwaitingAnswers()
        self._resender: threading.Thread | None = None
        self.battery = SimulatedBattery(config.battery_pct, config.charging)
        self.capabilities = CapabilityReporter(transport, site=settings.site, device_id=config.device_id,
                                               patient_id=config.patient_id, role="watch", state=self._own_state,
                                               refresh_s=config.capabilities_every_s)

    def _own_state(self) -> OwnState:
        """What the edge should know of this watch: battery, and the detector's model and its latency."""
        variants = getattr(self.detector, "variants", None)
        return OwnState(battery=self.battery, model_variants=list(variants or []),
                        active_variant=getattr(self.detector, "variant", None),
                        inference_ms=getattr(self.detector, "inference_ms", None))

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self, *, run: bool = True) -> None:
        site, c = self.settings.site, self.config
        self.router.on(topics.cmd(site, c.patient_id, c.device_id), CommandMessage, self.on_command)
        self._resender = threading.Thread(target=self._resend_loop, name=f"resend-{c.device_id}", daemon=True)
        self._resender.start()
        if run:
            self.start_replay()

    def start_replay(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"watch-{self.config.device_id}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.router.close()
        for thread in (self._thread, self._resender):
            if thread is not None:
                thread.join(timeout=5)

    def _resend_loop(self) -> None:
        while not self._stop.wait(RESEND_POLL_S):
            try:
                self.resend_due()
            except Exception:  # the store failed: say so, try again next poll
                self.counters.inc("awaiting.failed")
                log.exception("resending unanswered alerts failed", extra={"device": self.config.device_id})

    def resend_due(self, now: float | None = None) -> int:
        """Send again every alert its edge has not answered in time (the same bytes: the hub dedupes by id)."""
        again, expired = self.awaiting.due(now)
        for row in again:
            self.router.transport.publish(row.topic, row.payload, qos=1)
            self.counters.inc("alerts.resent")
            log.warning("alert unanswered: sent again", extra={"alert_id": row.alert_id, "attempt": row.attempts + 1})
        for alert_id in expired:
            self.counters.inc("alerts.unanswered_expired")
            log.error("alert never answered by an edge; too old for the bus now: given up",
                      extra={"alert_id": alert_id, "device": self.config.device_id})
        return len(again)

    def _run(self) -> None:
        while not self._stop.is_set():
            chunk = self.replay.next_chunk()
            if chunk is None:
                log.info("replay finished", extra={"device": self.config.device_id})
                return
            try:
                self.process(chunk)
            except Exception:
                self.counters.inc("watch.errors")
                log.exception("chunk processing failed", extra={"device": self.config.device_id})
            self._stop.wait(self.replay.wait_s())

    # -- the stream ------------------------------------------------------------------------------
    def process(self, chunk: Chunk) -> list[AlertMessage]:
        """Feed one chunk: buffer it, detect, publish alerts/vitals/strips. Returns the alerts sent."""
        with self._lock:
            self._append(chunk.samples_mv)
            if chunk.drill_trace is not None:
                self._drill_trace = chunk.drill_trace
                self._drill_until_s = chunk.t0_s + len(chunk.samples_mv) / self.fs + DRILL_GRACE_S
            # a detector counts time from its own start: stream time is that plus when it started (it restarts
            # after every drill), so strips and onsets stay on the stream's clock
            events = [replace(e, onset_s=e.onset_s + self._detector_since_s,
                              detected_s=e.detected_s + self._detector_since_s)
                      for e in self.detector.feed(chunk.samples_mv)]
            switched = self._model_switches()
            now_s = self.replay.stream_s
            alerts = [self._alert(ev) for ev in events]
            if self._drill_trace is not None and now_s > self._drill_until_s:
                # the drill is over: its episode must not linger in the clinical detector's state
                self._drill_trace = None
                previous, self.detector = self.detector, make_detector(self.config.detector, self.fs)
                carry_over = getattr(self.detector, "carry_over", None)
                if callable(carry_over):  # not clinical state: e.g. the model variant a loaded watch runs
                    carry_over(previous)
                self._detector_since_s = now_s
        for alert in alerts:
            self._send_alert(alert)
            self.counters.inc("alerts.drill" if alert.drill else "alerts.clinical")
            log.info("alert raised", extra={"trace_id": alert.trace_id, "kind": alert.payload.kind,
                                            "drill": alert.drill, "device": self.config.device_id})
        if now_s >= self._next_vitals_s or switched:  # a model switch is reported at once
            self._next_vitals_s = now_s + self.config.vitals_every_s
            self._vitals(now_s, chunk.drill_trace is not None)
            if switched:  # the edge's registry (training selection) learns of the switch now, not in 30 s
                self.capabilities.publish()
            else:
                self.capabilities.tick()
        if now_s < self._stream_until_s and now_s >= self._next_strip_s:
            self._next_strip_s = now_s + 2.0
            self._stream_strip(now_s)
        return alerts

    def _model_switches(self) -> bool:
        """Count and log the detector's model-variant switches (a learned detector over or back under its
        inference budget); True if there were any."""
        pop = getattr(self.detector, "pop_switches", None)
        switches = pop() if callable(pop) else []
        for switch in switches:
            self.counters.inc(f"watch.model_switch.{switch.to}")
            log.warning("beat model switched to its %s variant", switch.to,
                        extra={"device": self.config.device_id, "reason": switch.reason,
                               "window_ms": switch.latency_ms})
        return bool(switches)

    def _send_alert(self, alert: AlertMessage) -> None:
        """Kept until the edge answers, then published; kept first, because on an in-memory bus the answer
        arrives during the publish. A store that cannot be written does not hold the alert back."""
        topic = topics.alert(self.settings.site, self.config.patient_id, self.config.device_id)
        raw = encode(alert)
        try:
            self.awaiting.add(alert.payload.alert_id, topic, raw)
        except (sqlite3.Error, OSError) as exc:
            self.counters.inc("awaiting.write_failed")
            log.error("cannot keep the alert for an answer (%s): sent once, without resends", exc,
                      extra={"trace_id": alert.trace_id})
        self.router.transport.publish(topic, raw, qos=1)

    def _append(self, samples: np.ndarray) -> None:
        self._buffer.append(np.asarray(samples, dtype=np.float64))
        self._buffer_len += len(samples)
        self._buffer_end += len(samples)
        while self._buffer and self._buffer_len - len(self._buffer[0]) >= self._buffer_keep:
            self._buffer_len -= len(self._buffer.popleft())

    def _excerpt(self, start_s: float, end_s: float) -> tuple[np.ndarray, float]:
        """Samples between two stream times (clipped to what is buffered) and the actual start time."""
        data = np.concatenate(list(self._buffer)) if self._buffer else np.zeros(0)
        first = self._buffer_end - len(data)
        lo = max(int(start_s * self.fs), first)
        hi = min(int(end_s * self.fs), self._buffer_end)
        return data[lo - first: max(hi, lo) - first], lo / self.fs

    def _alert(self, event: DetectorEvent) -> AlertMessage:
        c = self.config
        start = min(event.onset_s - c.strip_pre_s, event.detected_s - c.strip_min_s)
        start = max(start, event.detected_s - c.strip_max_s)
        samples, t0 = self._excerpt(start, event.detected_s)
        strip = EcgStrip.from_mv(samples, fs=self.fs, t0_s=t0, event_s=max(0.0, event.onset_s - t0))
        evidence = dict(event.evidence)
        if c.rhythm_reader:
            evidence.update(reader_evidence(samples, self.fs))
        alert_id = new_id()
        self._alert_ends[alert_id] = t0 + len(samples) / self.fs
        while len(self._alert_ends) > 64:
            self._alert_ends.popitem(last=False)
        drill = self._drill_trace is not None
        return AlertMessage(
            **self.stamp(patient_id=c.patient_id, trace_id=self._drill_trace or alert_id, drill=drill),
            payload=AlertPayload(alert_id=alert_id, kind=event.kind, detector=self.detector.name,
                                 hr_bpm=event.hr_bpm, onset_s=max(0.0, event.onset_s),
                                 detected_s=event.detected_s, evidence=evidence, strip=strip,
                                 stream_ref=c.stream_ref),
        )

    def _vitals(self, now_s: float, drill: bool) -> None:
        hr = self.detector.heart_rate_bpm
        msg = VitalsMessage(**self.stamp(patient_id=self.config.patient_id, drill=drill),
                            payload=VitalsPayload(hr_bpm=None if hr is None else round(hr, 1),
                                                  n_beats=self.detector.beats_in_window, window_s=10.0,
                                                  stream_s=round(now_s, 3), signal_ok=hr is not None,
                                                  model_variant=getattr(self.detector, "variant", None)))
        self.router.publish(topics.vitals(self.settings.site, self.config.patient_id, self.config.device_id), msg,
                            qos=0)

    def _stream_strip(self, now_s: float) -> None:
        """The ECG since the previous chunk (since the end of the alert's strip, for the first): the alert strip
        and the stream join without a gap into the episode's full disclosure (edge_hub.disclosure)."""
        samples, t0 = self._excerpt(max(self._stream_from_s, now_s - 10.0), now_s)
        if not len(samples):
            return
        self._stream_from_s = t0 + len(samples) / self.fs
        msg = StripMessage(**self.stamp(patient_id=self.config.patient_id, drill=self._drill_trace is not None),
                           payload=StripPayload(alert_id=self._stream_alert,
                                                strip=EcgStrip.from_mv(samples, fs=self.fs, t0_s=t0)))
        self.router.publish(topics.strip(self.settings.site, self.config.patient_id, self.config.device_id), msg,
                            qos=0)

    # -- commands --------------------------------------------------------------------------------
    def on_command(self, parts: topics.TopicParts, msg: CommandMessage) -> None:
        cmd = msg.payload
        refused = None if self._verifier is None else self._verifier.check(msg, self.config.device_id)
        if refused is not None:
            self.counters.inc(f"rejected.command_{refused}")
            log.warning("command refused", extra={"trace_id": msg.trace_id, "reason": refused,
                                                  "signer": cmd.signer, "command": cmd.command})
            return
        self._obey(msg)
        if self._verifier is not None:  # obeyed: only now is its id spent (a failure above is retried)
            self._verifier.obeyed(msg)

    def _obey(self, msg: CommandMessage) -> None:
        cmd = msg.payload
        # any command naming an alert says the edge holds it; `alert_received` says only that
        if cmd.alert_id is not None and self.awaiting.answered(cmd.alert_id):
            self.counters.inc("alerts.answered")
        if cmd.command == "alert_received":
            return
        if cmd.alert_id is not None and cmd.command in ("notify_wearer", "stream_strip"):
            key = (cmd.alert_id, cmd.command)
            if key in self._obeyed:
                self.counters.inc("duplicate.command")
                return
            self._obeyed.add(key)
        self.counters.inc(f"commands.{cmd.command}")
        if cmd.command == "notify_wearer":
            self.wearer_notifications += 1
            log.info("wearer notified", extra={"trace_id": msg.trace_id, "level": cmd.level})
        elif cmd.command == "stream_strip":
            self._stream_until_s = self.replay.stream_s + (cmd.duration_s or 30.0)
            self._next_strip_s = self.replay.stream_s + 2.0  # ≈ 2 s chunks, from the end of the alert strip on
            self._stream_alert = cmd.alert_id
            self._stream_from_s = self._alert_ends.get(cmd.alert_id or "", self.replay.stream_s)
        elif cmd.command == "stop_stream":
            self._stream_until_s = -1.0
        elif cmd.command == "drill_inject":
            if not msg.drill or cmd.scenario is None:
                self.counters.inc("rejected.drill_not_marked")
                log.warning("drill command without drill flag or scenario refused", extra={"trace_id": msg.trace_id})
                return
            segment = drill_segment(cmd.scenario, self.fs, self.settings.mitdb_dir, self.settings.vfdb_dir)
            # a drill waits until the watch has a strip's worth of its own signal: an alert strip shorter
            # than that reads "unusable" on the phone and the drill would end at triage, testing nothing
            # and until its detector has a strip's worth of signal since it was last reset: right after the
            # previous drill ends the detector starts afresh, and a pause or asystole in its first beats goes
            # unseen (it has no rhythm yet to miss)
            with self._lock:
                fresh_from = self._drill_until_s if self._drill_trace is not None else self._detector_since_s
            hold_until_s = max(self.config.strip_min_s, fresh_from + self.config.strip_min_s)
            self.replay.splice(segment.samples_mv, msg.trace_id, not_before_s=hold_until_s)
            log.info("drill spliced", extra={"trace_id": msg.trace_id, "scenario": cmd.scenario,
                                             "seconds": round(segment.duration_s, 1),
                                             "starts_at_s": round(max(hold_until_s, self.replay.stream_s), 1)})
