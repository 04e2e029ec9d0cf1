"""Triage rules: watch alert (+ phone findings, + what other devices of the patient say) → a level.

Pure and deterministic, so every rule is unit-tested and a clinician can read the whole policy here.
Principles:
- The edge acts on the watch alert alone at once (rapid response within milliseconds); the phone's
  findings refine the level when they arrive.
- Poor signal quality never *downgrades* an alert: "inconclusive" is not "normal".
- A run of ≥ 3 ventricular beats at ≥ 100 bpm on the phone's strip (non-sustained VT, `vt_run_beats`) is
  at least urgent and never softened, whatever the strip's dominant rhythm and even on a strip too poor
  for a rhythm: an alert strip holds the onset, so a VT run at its end sits beside sinus beats. A slow
  ventricular run (idioventricular) does not count here.
- A fast irregular rhythm the phone could not name (`other` at ≥ 150 bpm: AF with a fast ventricular
  response looks like this on a short strip) raises a tachycardia alert to urgent, as `svt` and `af` do.
- Monitor events and candidates on the phone's strip (issue 13): VF or asystole there is an emergency;
  a VT event (≥ 5 ventricular beats at > 100 bpm) is an emergency when sustained (≥ 30 s) and urgent
  otherwise; a possible VT/VF/asystole (`candidates`, even on a strip too poor for a rhythm) is at least
  urgent and never softened; extreme brady/tachycardia and a pause ≥ 3 s are urgent (< 30 bpm is an
  emergency); an AF episode confirms an irregular-rhythm alert. `EVENT_RULES` is the table.
- A second device of the same patient alerting in the same window corroborates (one level up).
- Thresholds follow common ambulatory-monitoring practice (e.g. pauses ≥ 3 s and sustained
  wide-complex tachycardia are urgent/emergent; HR < 30 bpm is emergent); the expert rules with their
  guideline citations live in the cloud's report rules.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.messages import TRIAGE_ORDER, AlertPayload, AnalysisPayload, CommandName, MonitorEvent, TriageLevel

LEVELS: tuple[TriageLevel, ...] = ("info", "urgent", "emergency")
NSVT_MIN_BEATS = 3
FAST_IRREGULAR_BPM = 150.0
SUSTAINED_VT_S = 10.0  # on an alert strip (≤ 30 s): 10 s, or half the strip, is the rules' "sustained"
MAX_EVENT_REASONS = 12  # reasons are listed per event type beyond this (a triage carries ≤ 32 reasons)
PAUSE_URGENT_S = 3.0
CRITICAL_BRADY_BPM = 30.0


def event_level(event: MonitorEvent, strip_s: float = 30.0) -> TriageLevel | None:
    """The level one monitor event calls for (None: it raises nothing by itself)."""
    if event.type in ("vf", "asystole"):
        return "emergency"
    if event.type == "vt":
        sustained = event.end_s - event.start_s >= min(SUSTAINED_VT_S, 0.5 * strip_s)
        return "emergency" if sustained else "urgent"
    if event.type == "extreme_bradycardia":
        return "emergency" if event.hr_bpm is not None and event.hr_bpm < CRITICAL_BRADY_BPM else "urgent"
    if event.type == "extreme_tachycardia":
        return "urgent"
    if event.type == "pause":
        return "urgent" if event.end_s - event.start_s >= PAUSE_URGENT_S else None
    return None  # af: confirms an irregular-rhythm alert (below), not an alarm by itself


#: (event type, what the edge does) — the table the docs and tests walk.
EVENT_RULES: tuple[tuple[str, str], ...] = (
    ("vf", "emergency"), ("asystole", "emergency"), ("vt", "urgent; emergency when ≥ 10 s or half the strip"),
    ("extreme_bradycardia", "urgent; emergency below 30 bpm"), ("extreme_tachycardia", "urgent"),
    ("pause", "urgent when ≥ 3 s"), ("af", "confirms an irregular-rhythm alert"),
)


def _describe(event: MonitorEvent) -> str:
    rate = "" if event.hr_bpm is None else f" at {event.hr_bpm:.0f} bpm"
    return (f"phone analysis: {event.type.replace('_', ' ')} event, {event.beats} beats{rate}, "
            f"{event.start_s:.1f}–{event.end_s:.1f} s")


@dataclass(frozen=True, slots=True)
class PatientContext:
    """What the hub knows about the patient beyond this alert."""

    other_devices_alerting: int = 0  # distinct other devices with an alert in the last minute
    latest_hr_bpm: dict[str, float] | None = None  # device_id → latest vitals HR


@dataclass(frozen=True, slots=True)
class Decision:
    level: TriageLevel
    reasons: tuple[str, ...]
    responses: tuple[CommandName, ...]

    @property
    def escalate(self) -> bool:
        return self.level != "info"


def _max(a: TriageLevel, b: TriageLevel) -> TriageLevel:
    return a if TRIAGE_ORDER[a] >= TRIAGE_ORDER[b] else b


def _bump(level: TriageLevel) -> TriageLevel:
    return LEVELS[min(TRIAGE_ORDER[level] + 1, len(LEVELS) - 1)]


def level_from_alert(alert: AlertPayload) -> tuple[TriageLevel, list[str]]:
    hr = alert.hr_bpm
    kind = alert.kind
    if kind == "wide_complex_run":
        return "emergency", ["sustained wide-complex run (possible ventricular tachycardia)"]
    if kind == "pause":
        pause_s = alert.evidence.get("pause_s", 0.0)
        if pause_s >= 5.0:
            return "emergency", [f"pause {pause_s:.1f} s (≥ 5 s)"]
        return "urgent", [f"pause {pause_s:.1f} s"]
    if kind == "bradycardia":
        if hr is not None and hr < 30:
            return "emergency", [f"bradycardia {hr:.0f} bpm (< 30)"]
        return "urgent", [f"bradycardia {hr:.0f} bpm" if hr is not None else "bradycardia"]
    if kind == "tachycardia":
        if hr is not None and hr >= 180:
            return "emergency", [f"tachycardia {hr:.0f} bpm (≥ 180)"]
        if hr is not None and hr >= 150:
            return "urgent", [f"tachycardia {hr:.0f} bpm (≥ 150)"]
        return "info", [f"tachycardia {hr:.0f} bpm" if hr is not None else "tachycardia"]
    return "urgent", ["irregular rhythm (possible atrial fibrillation)"]


def refine_with_analysis(level: TriageLevel, reasons: list[str], alert: AlertPayload,
                         analysis: AnalysisPayload) -> TriageLevel:
    """Phone findings can confirm (keep/raise) or, with good signal, soften an irregular-rhythm alert."""
    nsvt = (analysis.vt_run_beats or 0) >= NSVT_MIN_BEATS
    if nsvt:
        reasons.append(f"phone analysis: run of {analysis.vt_run_beats} ventricular beats at ≥ 100 bpm")
        level = _max(level, "urgent")
    # events and candidates act whatever the quality: they are why an onset strip or a poor strip matters
    floor: TriageLevel = level
    alarming = False
    raising = [(e, lvl) for e in analysis.events if (lvl := event_level(e, analysis.duration_s)) is not None]
    for _, raised in raising:
        floor = _max(floor, raised)
        alarming = True
    if len(raising) <= MAX_EVENT_REASONS:
        reasons += [_describe(e) for e, _ in raising]
    else:  # a strip full of events: one reason per type, never more than a triage can carry
        for kind in dict.fromkeys(e.type for e, _ in raising):
            n = sum(e.type == kind for e, _ in raising)
            reasons.append(f"phone analysis: {n} {kind.replace('_', ' ')} events")
    for cand in analysis.candidates[:4]:
        reasons.append(f"phone analysis: possible {cand.rhythm} (p = {cand.probability:.2f}, {cand.source})")
        # the signal-processing rules' own VT/VF reading kept its old weight: an emergency
        floor = _max(floor, "emergency" if cand.source == "rules" else "urgent")
    never_soften = nsvt or alarming or bool(analysis.candidates)
    level = floor
    if analysis.quality == "unusable" or analysis.rhythm == "inconclusive":
        reasons.append("phone analysis inconclusive (signal quality); alert level kept")
        return level
    if analysis.rhythm in ("vt", "vf", "asystole"):
        reasons.append(f"phone analysis: {analysis.rhythm}")
        return "emergency"
    if analysis.max_rr_s is not None and analysis.max_rr_s >= 3.0:
        reasons.append(f"phone analysis: pause {analysis.max_rr_s:.1f} s (≥ 3 s)")
        level = _max(level, "urgent")
    if analysis.hr_bpm is not None and analysis.hr_bpm < 30:
        reasons.append(f"phone analysis: HR {analysis.hr_bpm:.0f} bpm")
        level = "emergency"
    if alert.kind == "irregular_rhythm":
        af_event = any(e.type == "af" for e in analysis.events)
        if analysis.irregular or analysis.rhythm in ("af", "afl") or af_event:
            reasons.append(f"phone analysis confirms irregular rhythm ({analysis.rhythm})")
        elif analysis.rhythm.startswith("sinus") and not never_soften:
            reasons.append(f"phone analysis: regular {analysis.rhythm.replace('_', ' ')} (good signal)")
            level = "info"
    fast_unnamed = analysis.rhythm == "other" and (analysis.hr_bpm or 0) >= FAST_IRREGULAR_BPM
    if alert.kind == "tachycardia" and (analysis.rhythm in ("svt", "af", "afl") or fast_unnamed):
        reasons.append(f"phone analysis: {analysis.rhythm} at {analysis.hr_bpm or 0:.0f} bpm")
        level = _max(level, "urgent")
    return level


def responses_for(level: TriageLevel) -> tuple[CommandName, ...]:
    if level == "info":
        return ()
    return ("notify_wearer", "stream_strip")


def triage(alert: AlertPayload, analysis: AnalysisPayload | None, context: PatientContext) -> Decision:
    level, reasons = level_from_alert(alert)
    if analysis is not None:
        level = refine_with_analysis(level, reasons, alert, analysis)
    if context.other_devices_alerting > 0 and level != "info":
        level = _bump(level)
        reasons.append(f"corroborated by {context.other_devices_alerting} other device(s)")
    return Decision(level=level, reasons=tuple(reasons), responses=responses_for(level))
