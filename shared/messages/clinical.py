"""Messages of the clinical path: watch alert → phone analysis → edge triage/escalation → report."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.messages.envelope import EcgStrip, Envelope, Id

AlertKind = Literal["tachycardia", "bradycardia", "pause", "irregular_rhythm", "wide_complex_run"]
ALERT_KINDS: tuple[str, ...] = AlertKind.__args__  # type: ignore[attr-defined]

TriageLevel = Literal["info", "urgent", "emergency"]
TRIAGE_ORDER: dict[str, int] = {"info": 0, "urgent": 1, "emergency": 2}

#: Rhythm vocabulary shared by the phone analysis and reports (fixed, documented in docs/messages.md).
Rhythm = Literal[
    "sinus", "sinus_tachycardia", "sinus_bradycardia", "af", "afl", "svt", "vt", "vf", "asystole",
    "other", "inconclusive",
]
SignalQuality = Literal["good", "acceptable", "unusable"]

#: Monitor events within a strip (`shared.analysis.events` defines each).
EventType = Literal["asystole", "extreme_bradycardia", "extreme_tachycardia", "vt", "vf", "af", "pause"]
EVENT_TYPES: tuple[str, ...] = EventType.__args__  # type: ignore[attr-defined]
#: Life-threatening rhythms the analysis names as candidates even on a strip too poor for a rhythm.
CandidateRhythm = Literal["vt", "vf", "asystole"]
#: The watch's alert kinds and the monitor event each one claims (what the phone can confirm or not).
ALERT_EVENT: dict[str, tuple[str, ...]] = {
    "tachycardia": ("extreme_tachycardia", "vt", "af"),
    "bradycardia": ("extreme_bradycardia", "asystole", "pause"),
    "pause": ("pause", "asystole"),
    "irregular_rhythm": ("af",),
    "wide_complex_run": ("vt", "vf"),
}


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class AlertPayload(_Payload):
    alert_id: Id
    kind: AlertKind
    detector: str = Field(max_length=64, description="Detector name/version that fired")
    hr_bpm: float | None = Field(None, ge=0, le=400)
    onset_s: float = Field(ge=0, description="Stream time the episode began, seconds")
    detected_s: float = Field(ge=0, description="Stream time the detector fired, seconds")
    evidence: dict[str, float] = Field(default_factory=dict, max_length=32)
    strip: EcgStrip
    stream_ref: str | None = Field(
        None, max_length=128, description="Replay source (e.g. mitdb/203) for evaluation; never a person"
    )


class AlertMessage(Envelope):
    type: Literal["alert"] = "alert"
    payload: AlertPayload


class MonitorEvent(_Payload):
    """One monitor event within the strip: seconds from the strip's first sample."""

    type: EventType
    start_s: float = Field(ge=0)
    end_s: float = Field(ge=0)
    beats: int = Field(ge=0, le=10_000)
    hr_bpm: float | None = Field(None, ge=0, le=1000)
    probability: float | None = Field(None, ge=0, le=1)


class Candidate(_Payload):
    """A life-threatening rhythm the strip may hold, with its probability and which part of the analysis saw it."""

    rhythm: CandidateRhythm
    probability: float = Field(ge=0, le=1)
    source: str = Field(max_length=32, description="reader | rules | events")


class AnalysisPayload(_Payload):
    alert_id: Id
    method: str = Field(max_length=64)
    quality: SignalQuality
    quality_score: float = Field(ge=0, le=1)
    rhythm: Rhythm
    n_beats: int = Field(ge=0)
    hr_bpm: float | None = None
    hr_min_bpm: float | None = None
    hr_max_bpm: float | None = None
    rr_mean_ms: float | None = None
    sdnn_ms: float | None = None
    rmssd_ms: float | None = None
    pnn50: float | None = None
    rr_irregularity: float | None = Field(None, description="Median |ΔRR| / median RR")
    irregular: bool = False
    max_rr_s: float | None = None
    duration_s: float = Field(ge=0)
    analysis_ms: float = Field(ge=0)
    # Clinical depth (issue 5); optional so older phones stay valid. Each interval with the beats it rests on.
    rhythm_confidence: float | None = Field(None, ge=0, le=1)
    pr_ms: float | None = None
    pr_beats: int | None = None
    qrs_ms: float | None = None
    qrs_beats: int | None = None
    qt_ms: float | None = None
    qt_beats: int | None = None
    qtc_bazett_ms: float | None = None
    qtc_fridericia_ms: float | None = None
    pauses: int | None = Field(None, ge=0, description="RR intervals > 2 s")
    ectopic_beats: int | None = Field(None, ge=0)
    ectopic_burden: float | None = Field(None, ge=0, le=1)
    ventricular_run_beats: int | None = Field(None, ge=0, description="Longest run of consecutive ventricular beats")
    vt_run_beats: int | None = Field(None, ge=0, description="Longest run of ≥ 3 ventricular beats at ≥ 100 bpm "
                                     "(non-sustained VT or longer); 0 when none")
    vt_run_s: float | None = Field(None, ge=0, description="That run's first to last beat, seconds")
    hrv_freq: dict[str, float] | None = Field(None, max_length=16, description="LF/HF etc. on long strips")
    segment_quality: list[str] | None = Field(None, max_length=64, description="Per-segment quality labels")
    notes: list[str] | None = Field(None, max_length=16)
    # The learned rhythm reader (issue 13); optional so older phones stay valid.
    events: list[MonitorEvent] = Field(default_factory=list, max_length=64,
                                       description="Monitor events within the strip (empty when none)")
    candidates: list[Candidate] = Field(default_factory=list, max_length=8,
                                        description="Possible VT / VF / asystole, even on a poor strip")
    rhythm_probabilities: dict[str, float] | None = Field(None, max_length=8,
                                                          description="The reader's calibrated class probabilities")
    rules_rhythm: Rhythm | None = Field(None, description="The signal-processing rules' reading (cross-check)")
    reader: str | None = Field(None, max_length=64, description="Rhythm reader version; None: rules alone")


class AnalysisMessage(Envelope):
    type: Literal["analysis"] = "analysis"
    payload: AnalysisPayload


class TriagePayload(_Payload):
    alert_id: Id
    level: TriageLevel
    stage: Literal["initial", "final"]
    reasons: list[str] = Field(default_factory=list, max_length=32)
    responses: list[str] = Field(default_factory=list, max_length=16)
    analysis_received: bool = False


class TriageMessage(Envelope):
    type: Literal["triage"] = "triage"
    payload: TriagePayload


class Hop(_Payload):
    """One step an episode passed, for latency tracing (the drill and the dashboard show these)."""

    name: str = Field(max_length=64)
    source: str = Field(max_length=64)
    at: datetime


class EscalationPayload(_Payload):
    alert_id: Id
    site: Id
    level: TriageLevel
    reasons: list[str] = Field(default_factory=list, max_length=32)
    alert: AlertMessage
    analysis: AnalysisMessage | None = None
    triage: TriagePayload
    hops: list[Hop] = Field(default_factory=list, max_length=64)


class EscalationMessage(Envelope):
    type: Literal["escalation"] = "escalation"
    payload: EscalationPayload


class ReportPayload(_Payload):
    report_id: Id
    alert_id: Id
    level: TriageLevel
    url: str = Field(max_length=256)
    hops: list[Hop] = Field(default_factory=list, max_length=64)


class ReportMessage(Envelope):
    type: Literal["report"] = "report"
    payload: ReportPayload


class LabelPayload(_Payload):
    """A clinician's verdict on an alert, for the device's training: never made for a drill."""

    alert_id: Id
    report_id: Id
    verdict: Literal["true_alarm", "false_alarm", "uncertain"]
    rhythm: str | None = Field(None, max_length=32, description="The rhythm the clinician read, when it differs")
    labelled_at: datetime


class LabelMessage(Envelope):
    type: Literal["label"] = "label"
    payload: LabelPayload
