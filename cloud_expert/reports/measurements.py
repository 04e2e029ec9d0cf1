"""The numbers a report rests on: one analysis of one strip, and every contradiction with the other hops.

Pure: messages in, one `Measurements` out. The report's heart rate, beat marks, runs, rhythm, events
and durations all come from `reading` — the cloud's own re-analysis of the stored alert strip with the
code and reader file the phone runs (`shared.analysis`, ADR 0010) — so they cannot contradict each
other: a run of n beats over t seconds is reported at 60·(n − 1)/t bpm. The watch's rate at the alert
and the phone's reading are cross-checks: where they differ from the reading, `contradictions` says so
in words, and the report shows it beside the reading, never merged into it.

When the cloud could not re-analyse (no strip, an error), the phone's analysis is the reading and the
report says which source it used. Every value may be None; the rules treat None as "not measured".
"""

from __future__ import annotations

from dataclasses import dataclass, field

from cloud_expert.reports.beats import BeatMarks
from shared.messages import ALERT_EVENT, AlertPayload, AnalysisPayload, Candidate, MonitorEvent

#: Watch and strip rates further apart than this (and than `HR_DISAGREE_FRACTION`) are a contradiction.
HR_DISAGREE_BPM = 15.0
HR_DISAGREE_FRACTION = 0.2
PAUSE_DISAGREE_S = 0.5


@dataclass(frozen=True, slots=True)
class Measurements:
    """One episode's measurements from one reading, each with where it came from."""

    alert_kind: str
    hr_bpm: float | None = None
    hr_source: str | None = None
    watch_hr_bpm: float | None = None
    pr_ms: float | None = None
    qrs_ms: float | None = None
    qt_ms: float | None = None
    qtc_ms: float | None = None
    qtc_formula: str | None = None
    qtc_bazett_ms: float | None = None
    qtc_fridericia_ms: float | None = None
    rhythm: str | None = None
    rhythm_confidence: float | None = None
    max_rr_s: float | None = None
    pauses: int | None = None
    ventricular_run_beats: int | None = None
    ventricular_run_s: float | None = None
    ventricular_run_bpm: float | None = None
    ectopic_beats: int | None = None
    ectopic_burden: float | None = None
    quality: str | None = None
    n_beats_cloud: int | None = None
    reading_source: str = "none"
    rules_rhythm: str | None = None
    phone_rhythm: str | None = None
    events: tuple[MonitorEvent, ...] = field(default=())
    candidates: tuple[Candidate, ...] = field(default=())
    contradictions: tuple[str, ...] = field(default=())


def run_rate(beats: int | None, seconds: float | None) -> float | None:
    """The rate a run of `beats` beats over `seconds` (first to last beat) implies."""
    if beats is None or beats < 2 or not seconds or seconds <= 0:
        return None
    return round(60.0 * (beats - 1) / seconds, 1)


def longest_run(a: AnalysisPayload) -> tuple[int | None, float | None]:
    """(beats, seconds) of the longest ventricular run at ≥ 100 bpm: a VT event, or the ≥ 3-beat fast run.

    Older phones sent only the any-rate run and no duration: its beats count, its duration is unknown.
    """
    vt_events = [e for e in a.events if e.type == "vt"]
    longest = max(vt_events, key=lambda e: e.beats, default=None)
    if longest is not None and longest.beats >= (a.vt_run_beats or 0):
        return longest.beats, round(longest.end_s - longest.start_s, 2)
    if a.vt_run_beats is not None:
        return a.vt_run_beats, a.vt_run_s if a.vt_run_beats else None
    return a.ventricular_run_beats, None


def contradictions(alert: AlertPayload, reading: AnalysisPayload | None, phone: AnalysisPayload | None,
                   *, reading_is_phone: bool) -> list[str]:
    """What the watch, the phone and the reading say differently, in words a clinician can act on."""
    out: list[str] = []
    if reading is None:
        return ["The strip could not be analysed: the figures are the watch's alone."]
    hr = reading.hr_bpm if reading.quality != "unusable" else None
    if alert.hr_bpm is not None and hr is not None:
        gap = abs(alert.hr_bpm - hr)
        if gap > HR_DISAGREE_BPM and gap > HR_DISAGREE_FRACTION * max(hr, alert.hr_bpm):
            out.append(f"The watch reported {alert.hr_bpm:.0f} bpm at the alert; the strip's beats give {hr:.0f} bpm "
                       "(the watch's rate is a running average of its own beat detector and can lag, or miss wide "
                       "complexes).")
    claimed = ALERT_EVENT.get(alert.kind, ())
    found = {e.type for e in reading.events} | {c.rhythm for c in reading.candidates}
    confirmed_af = alert.kind == "irregular_rhythm" and reading.rhythm in ("af", "afl")
    if claimed and not found & set(claimed) and not confirmed_af:
        out.append(f"The watch alerted {alert.kind.replace('_', ' ')}; the strip shows no "
                   f"{' / '.join(c.replace('_', ' ') for c in claimed)} event.")
    pause = alert.evidence.get("pause_s")
    if pause is not None and reading.max_rr_s is not None and pause > reading.max_rr_s + PAUSE_DISAGREE_S:
        out.append(f"The watch measured a {pause:.1f} s pause; the strip's longest RR is {reading.max_rr_s:.1f} s.")
    if reading.rules_rhythm is not None and reading.rhythm_probabilities is not None \
            and reading.rules_rhythm != reading.rhythm:
        out.append(f"Within the analysis, the signal-processing rules read {reading.rules_rhythm.replace('_', ' ')} "
                   f"where the learned reader reads {reading.rhythm.replace('_', ' ')}.")
    if phone is not None and not reading_is_phone:
        who = "edge (no phone findings in time)" if phone.method.startswith("edge:") else "phone"
        if phone.rhythm != reading.rhythm:
            versions = "" if phone.reader == reading.reader else \
                f" (phone reader {phone.reader or 'none'}, cloud reader {reading.reader or 'none'})"
            out.append(f"The {who} read {phone.rhythm.replace('_', ' ')}; the cloud's re-analysis of the same strip "
                       f"reads {reading.rhythm.replace('_', ' ')}{versions}.")
        if phone.hr_bpm is not None and hr is not None and abs(phone.hr_bpm - hr) > 0.1 * hr:
            out.append(f"The {who} measured {phone.hr_bpm:.0f} bpm; the re-analysis {hr:.0f} bpm.")
    return out


def measurements_from(alert: AlertPayload, reading: AnalysisPayload | None, phone: AnalysisPayload | None = None,
                      beats: BeatMarks | None = None) -> Measurements:
    """One reading's measurements (the cloud's re-analysis; the phone's when there is none).

    HR: the reading's mean HR unless its strip was unusable, else the watch's. QTc: Fridericia when
    present (Bazett over-corrects at high rates), else Bazett.
    """
    reading_is_phone = reading is None and phone is not None
    a = reading if reading is not None else phone
    source = "strip re-analysis" if reading is not None else "phone" if phone is not None else "none"
    if a is not None and a.reader:
        source += f" (reader {a.reader})"
    hr, hr_source = None, None
    if a is not None and a.quality != "unusable" and a.hr_bpm is not None:
        hr, hr_source = a.hr_bpm, "strip" if reading is not None else "phone"
    elif alert.hr_bpm is not None:
        hr, hr_source = alert.hr_bpm, "watch"
    qtc, formula = None, None
    if a is not None and a.qtc_fridericia_ms is not None:
        qtc, formula = a.qtc_fridericia_ms, "Fridericia"
    elif a is not None and a.qtc_bazett_ms is not None:
        qtc, formula = a.qtc_bazett_ms, "Bazett"
    max_rr = a.max_rr_s if a is not None else alert.evidence.get("pause_s")
    run_beats, run_s = longest_run(a) if a is not None else (None, None)
    return Measurements(
        alert_kind=alert.kind, hr_bpm=hr, hr_source=hr_source, watch_hr_bpm=alert.hr_bpm,
        pr_ms=a.pr_ms if a else None, qrs_ms=a.qrs_ms if a else None, qt_ms=a.qt_ms if a else None,
        qtc_ms=qtc, qtc_formula=formula, qtc_bazett_ms=a.qtc_bazett_ms if a else None,
        qtc_fridericia_ms=a.qtc_fridericia_ms if a else None,
        rhythm=a.rhythm if a else None, rhythm_confidence=a.rhythm_confidence if a else None,
        max_rr_s=max_rr, pauses=a.pauses if a else None, ventricular_run_beats=run_beats, ventricular_run_s=run_s,
        ventricular_run_bpm=run_rate(run_beats, run_s),
        ectopic_beats=a.ectopic_beats if a else None, ectopic_burden=a.ectopic_burden if a else None,
        quality=a.quality if a else None, n_beats_cloud=len(beats.r_peaks_s) if beats is not None else None,
        reading_source=source, rules_rhythm=a.rules_rhythm if a else None,
        phone_rhythm=phone.rhythm if phone is not None else None,
        events=tuple(a.events) if a else (), candidates=tuple(a.candidates) if a else (),
        contradictions=tuple(contradictions(alert, a, phone, reading_is_phone=reading_is_phone)),
    )
