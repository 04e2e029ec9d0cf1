"""A report from plain data: the assessment (rules), the HTML page and the PDF. Pure: no DB, no clock.

`render_report` computes the view once (R peaks, measurements, rules) and renders both documents from it,
so the HTML, the PDF, the stored assessment JSON and the FHIR export always say the same thing.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

import numpy as np
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from cloud_expert.reports.beats import BeatMarks, detect_r_peaks
from cloud_expert.reports.ecg_svg import strip_svg
from cloud_expert.reports.measurements import Measurements, measurements_from
from cloud_expert.reports.rules import Assessment, PastEpisode, assess
from shared.analysis.payload import to_payload
from shared.analysis.strip import analyze_strip
from shared.messages import AlertMessage, AnalysisMessage, AnalysisPayload, Hop, TriagePayload

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReportInput:
    """Everything a report shows; built from a stored episode and its patient's history, free of DB types."""

    report_id: str
    site: str
    patient_id: str
    level: str
    drill: bool
    trace_id: str
    alert: AlertMessage
    analysis: AnalysisMessage | None
    triage: TriagePayload
    hops: list[Hop]
    created_at: datetime
    history: tuple[PastEpisode, ...] = field(default=())
    signed_at: datetime | None = None
    signed_by: str | None = None
    review_status: str = "preliminary"  # final | amended | rejected once a clinician reviewed it
    review_reason: str | None = None

    @property
    def review_line(self) -> str | None:
        """The clinician's sign-off in one sentence; None while the report is preliminary."""
        if self.signed_at is None:
            return None
        when = self.signed_at.isoformat(timespec="seconds")
        if self.review_status == "amended":
            return f"Amended by {self.signed_by} at {when}: {self.review_reason}."
        if self.review_status == "rejected":
            return (f"Rejected by {self.signed_by} at {when}: {self.review_reason}. The automated findings below "
                    "were not accepted.")
        return f"Signed by {self.signed_by} at {when}."

    @classmethod
    def from_json(
        cls, *, report_id: str, site: str, patient_id: str, level: str, drill: bool, trace_id: str,
        alert_json: dict[str, Any], analysis_json: dict[str, Any] | None, triage_json: dict[str, Any],
        hops_json: list[dict[str, Any]], created_at: datetime, history: tuple[PastEpisode, ...] = (),
    ) -> ReportInput:
        """Rebuild the typed messages from the JSON an episode row keeps verbatim."""
        return cls(
            report_id=report_id, site=site, patient_id=patient_id, level=level, drill=drill, trace_id=trace_id,
            alert=AlertMessage.model_validate(alert_json),
            analysis=AnalysisMessage.model_validate(analysis_json) if analysis_json else None,
            triage=TriagePayload.model_validate(triage_json),
            hops=[Hop.model_validate(h) for h in hops_json],
            created_at=created_at, history=history,
        )

    @property
    def pdf_url(self) -> str:
        return f"/reports/{self.report_id}.pdf"

    @property
    def fhir_url(self) -> str:
        return f"/fhir/DiagnosticReport/{self.report_id}"


@dataclass(frozen=True, slots=True)
class ReportView:
    """The input plus what the cloud derived from it (R peaks, merged measurements, the rules' assessment)."""

    data: ReportInput
    beats: BeatMarks
    assessment: Assessment
    reading: AnalysisPayload | None = None

    @property
    def measurements(self) -> Measurements:
        return self.assessment.measurements


@dataclass(frozen=True, slots=True)
class RenderedReport:
    html: str
    pdf: bytes
    assessment_json: dict[str, Any]
    severity: str


def read_strip(data: ReportInput) -> tuple[AnalysisPayload | None, BeatMarks]:
    """The report's one reading: the stored strip analysed again with the phone's code and reader (ADR 0010)."""
    return read_alert_strip(data.alert)


def read_alert_strip(alert: AlertMessage) -> tuple[AnalysisPayload | None, BeatMarks]:
    """`read_strip` for an alert alone (the strip viewer needs no history).

    Falls back to the streaming detector's R peaks alone (and the phone's reading) if the analysis fails.
    """
    strip = alert.payload.strip
    signal = strip.to_mv()
    try:
        result = analyze_strip(signal, strip.fs)
        payload = to_payload(alert.payload.alert_id, result)
    except Exception:  # a report must still render: its measurements then say where they came from
        log.exception("strip re-analysis failed", extra={"trace_id": alert.trace_id})
        return None, detect_r_peaks(signal, fs=strip.fs)
    beats_s = result.r_peaks / strip.fs
    # V marks: the beat model's ventricular beats and every beat of a VT event, so a run shown is a run marked
    in_vt = np.zeros(len(beats_s), dtype=bool)
    for e in result.events:
        if e.type == "vt":
            in_vt |= (beats_s >= e.start_s - 1e-3) & (beats_s <= e.end_s + 1e-3)
    marks = BeatMarks(r_peaks_s=tuple(round(float(t), 4) for t in beats_s), fs=strip.fs,
                      method=f"cardiomesh strip analysis ({result.ectopy_method or 'rules'})",
                      ventricular=tuple(bool(v) for v in (np.asarray(result.ventricular, dtype=bool) | in_vt)))
    return payload, marks


def build_view(data: ReportInput) -> ReportView:
    """One reading of the strip, its measurements with every contradiction, and the rules with the history."""
    reading, beats = read_strip(data)
    phone = data.analysis.payload if data.analysis else None
    m = measurements_from(data.alert.payload, reading, phone, beats)
    return ReportView(data=data, beats=beats, assessment=assess(m, data.history, now=data.alert.created_at),
                      reading=reading)


@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(loader=PackageLoader("cloud_expert.reports", "templates"),
                      autoescape=select_autoescape(["html"]), trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _num
    return env


def _num(value: float | None, digits: int = 0) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def hop_rows(alert_created: datetime, hops: list[Hop]) -> list[dict[str, Any]]:
    return [{"name": h.name, "source": h.source, "at": h.at.isoformat(timespec="milliseconds"),
             "ms": (h.at - alert_created).total_seconds() * 1000.0} for h in hops]


def measurement_rows(m: Measurements) -> list[tuple[str, str, str]]:
    """(measurement, value, source) rows shared by the HTML and the PDF; unmeasured values show as '—'."""

    def v(value: float | None, unit: str, digits: int = 0) -> str:
        return "not measured" if value is None else f"{value:.{digits}f} {unit}".strip()

    rhythm = m.rhythm or "not analysed"
    if m.rhythm_confidence is not None:
        rhythm += f" (confidence {m.rhythm_confidence:.2f})"
    src = m.reading_source
    return [
        ("Heart rate", v(m.hr_bpm, "bpm"), m.hr_source or "—"),
        ("Heart rate at alert", v(m.watch_hr_bpm, "bpm"), "watch"),
        ("Rhythm", rhythm, src),
        ("PR interval", v(m.pr_ms, "ms"), src),
        ("QRS duration", v(m.qrs_ms, "ms"), src),
        ("QT interval", v(m.qt_ms, "ms"), src),
        ("QTc Bazett / Fridericia", f"{_num(m.qtc_bazett_ms)} / {_num(m.qtc_fridericia_ms)} ms", src),
        ("Longest RR", v(m.max_rr_s, "s", 2), src),
        ("Pauses (RR > 2 s)", "not measured" if m.pauses is None else str(m.pauses), src),
        ("Longest ventricular run", run_text(m), src),
        ("Ectopic burden", "not measured" if m.ectopic_burden is None else f"{m.ectopic_burden:.1%}", src),
        ("Beats marked on the strip", "—" if m.n_beats_cloud is None else str(m.n_beats_cloud), src),
    ]


def run_text(m: Measurements) -> str:
    """"5 beats over 1.6 s (150 bpm)": beats, duration and rate of one run, which agree by construction."""
    if m.ventricular_run_beats is None:
        return "not measured"
    if m.ventricular_run_beats == 0:
        return "none"
    if m.ventricular_run_s is None:
        return f"{m.ventricular_run_beats} beats, duration not measured"
    rate = "" if m.ventricular_run_bpm is None else f" ({m.ventricular_run_bpm:.0f} bpm)"
    return f"{m.ventricular_run_beats} beats over {m.ventricular_run_s:.1f} s{rate}"


def event_rows(m: Measurements) -> list[tuple[str, str, str, str, str]]:
    """(event, when, beats, rate, probability) rows for the monitor events of the reading."""
    return [(e.type.replace("_", " "), f"{e.start_s:.1f}–{e.end_s:.1f} s", str(e.beats),
             "—" if e.hr_bpm is None else f"{e.hr_bpm:.0f} bpm",
             "—" if e.probability is None else f"{e.probability:.2f}") for e in m.events]


def _html(view: ReportView) -> str:
    data = view.data
    strip = data.alert.payload.strip
    svg = strip_svg(strip.to_mv(), fs=strip.fs, event_s=strip.event_s, label=strip.lead, beats_s=view.beats.r_peaks_s,
                    ventricular=view.beats.ventricular)
    return _env().get_template("report.html").render(
        d=data, alert=data.alert.payload, analysis=data.analysis.payload if data.analysis else None,
        triage=data.triage, strip=strip, strip_svg=Markup(svg),  # svg: numbers + escaped label
        hops=hop_rows(data.alert.created_at, data.hops), a=view.assessment,
        rows=measurement_rows(view.measurements), h=view.assessment.history,
        m=view.measurements, events=event_rows(view.measurements),
    )


def render_report(data: ReportInput) -> RenderedReport:
    """The whole report: HTML page, PDF and the assessment (for the DB, the API and FHIR)."""
    from cloud_expert.reports.pdf import render_report_pdf  # reportlab is imported only where PDFs are made

    view = build_view(data)
    return RenderedReport(html=_html(view), pdf=render_report_pdf(view), assessment_json=view.assessment.to_json(),
                          severity=view.assessment.severity)


def render_report_html(data: ReportInput) -> str:
    """The report page alone (drill banner, assessment, measurements, ECG strip with beats, hops)."""
    return _html(build_view(data))
