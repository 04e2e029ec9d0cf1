"""The numbers a report rests on, merged from the watch alert, the phone findings and the cloud's R peaks.

Pure: messages in, one `Measurements` out. Every value may be None (an older phone, no analysis, an
unusable strip); the rules treat None as "not measured", never as normal.
"""

from __future__ import annotations

from dataclasses import dataclass

from cloud_expert.reports.beats import BeatMarks
from shared.messages import AlertPayload, AnalysisPayload


@dataclass(frozen=True, slots=True)
class Measurements:
    """One episode's measurements, each with where it came from (`*_source`: watch, phone or cloud)."""

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
    ectopic_beats: int | None = None
    ectopic_burden: float | None = None
    quality: str | None = None
    n_beats_cloud: int | None = None


def _max(*values: float | None) -> float | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def measurements_from(alert: AlertPayload, analysis: AnalysisPayload | None, beats: BeatMarks | None) -> Measurements:
    """Merge the sources; the phone's clinical-depth fields are optional and simply stay None when absent.

    HR: the phone's mean HR unless its strip was unusable, else the cloud's R peaks, else the watch.
    QTc: Fridericia when the phone sent it (Bazett over-corrects at high rates), else Bazett.
    Longest RR: the largest of the phone's and the watch's pause evidence; the cloud's R peaks only when
    neither measured it (a missed beat would fake a pause).
    """
    a = analysis
    usable = a is not None and a.quality != "unusable"
    hr, source = None, None
    if a is not None and usable and a.hr_bpm is not None:
        hr, source = a.hr_bpm, "phone"
    elif beats is not None and beats.hr_bpm is not None:
        hr, source = beats.hr_bpm, "cloud R peaks"
    elif alert.hr_bpm is not None:
        hr, source = alert.hr_bpm, "watch"
    qtc, formula = None, None
    if a is not None and a.qtc_fridericia_ms is not None:
        qtc, formula = a.qtc_fridericia_ms, "Fridericia"
    elif a is not None and a.qtc_bazett_ms is not None:
        qtc, formula = a.qtc_bazett_ms, "Bazett"
    max_rr = _max(a.max_rr_s if a else None, alert.evidence.get("pause_s"))
    if max_rr is None and beats is not None:
        max_rr = beats.max_rr_s
    # the fast run (>= 100 bpm) is what VT means; older phones sent only the any-rate run
    phone_run = None if a is None else a.vt_run_beats if a.vt_run_beats is not None else a.ventricular_run_beats
    run_f = _max(float(phone_run) if phone_run is not None else None, alert.evidence.get("run_beats"))
    run_beats = int(run_f) if run_f is not None else None
    run_rate = alert.hr_bpm if alert.hr_bpm else hr  # the watch's rate is the rate during the run it fired on
    run_s = run_beats * 60.0 / run_rate if run_beats and run_rate else None
    return Measurements(
        alert_kind=alert.kind, hr_bpm=hr, hr_source=source, watch_hr_bpm=alert.hr_bpm,
        pr_ms=a.pr_ms if a else None, qrs_ms=a.qrs_ms if a else None, qt_ms=a.qt_ms if a else None,
        qtc_ms=qtc, qtc_formula=formula, qtc_bazett_ms=a.qtc_bazett_ms if a else None,
        qtc_fridericia_ms=a.qtc_fridericia_ms if a else None,
        rhythm=a.rhythm if a else None, rhythm_confidence=a.rhythm_confidence if a else None,
        max_rr_s=max_rr, pauses=a.pauses if a else None, ventricular_run_beats=run_beats, ventricular_run_s=run_s,
        ectopic_beats=a.ectopic_beats if a else None, ectopic_burden=a.ectopic_burden if a else None,
        quality=a.quality if a else None, n_beats_cloud=len(beats.r_peaks_s) if beats is not None else None,
    )
