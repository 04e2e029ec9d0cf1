"""One coherent reading per episode, on real strips: the report's figures agree with each other and with the
annotations (MIT-BIH 205 VT, 207 ventricular flutter, a VFDB VF episode, an MIT-BIH AF strip).

Each strip is what a watch would send: one lead at the record's own rate, about 10 s before the event.
The report is built as the worker builds it (`build_view`: the cloud re-reads the strip with the shared
analysis and the shipped reader). Annotations are used here as the truth only.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from cloud_expert.reports.render import ReportInput, ReportView, build_view, render_report_html
from shared.ecg.annotations import load_annotations
from shared.ecg.sources import load_wfdb
from shared.messages import AlertKind, AlertMessage, AlertPayload, EcgStrip, TriagePayload
from shared.model.rhythm.reader import active_reader
from shared.settings import Settings
from tests.conftest import skip_or_fail

pytestmark = [pytest.mark.data, pytest.mark.slow]

MATCH_S = 0.15


def _data() -> object:
    d = Settings().data_dir
    if d is None or not (d / "mitdb").is_dir() or not (d / "vfdb").is_dir():
        skip_or_fail("MIT-BIH and VFDB not found (CARDIOMESH_DATA_DIR)")
    if active_reader() is None:
        skip_or_fail("no rhythm reader file (bench/results/rhythm.pt)")
    return d


def _view(record: str, start_s: float, end_s: float, *, kind: AlertKind, watch_hr: float) -> tuple[ReportView, float]:
    d = _data()
    signal = load_wfdb(d / record, lead="MLII", start_s=start_s, end_s=end_s)  # type: ignore[operator]
    strip = EcgStrip.from_mv(signal.samples_mv, fs=signal.fs, lead=signal.lead[:16], t0_s=start_s, event_s=10.0)
    alert = AlertMessage(source="watch-1", patient_id="p-test", created_at=datetime(2026, 12, 1, tzinfo=UTC),
                         payload=AlertPayload(alert_id="a1", kind=kind, detector="test", hr_bpm=watch_hr,
                                              onset_s=start_s + 10, detected_s=start_s + 10, strip=strip))
    data = ReportInput(report_id="r1", site="s", patient_id="p-test", level="emergency", drill=False,
                       trace_id="t1", alert=alert, analysis=None,
                       triage=TriagePayload(alert_id="a1", level="emergency", stage="final"), hops=[],
                       created_at=alert.created_at)
    return build_view(data), signal.fs


def _annotated_beats(record: str, start_s: float, end_s: float) -> np.ndarray:
    ann = load_annotations(Settings().data_dir / record)  # type: ignore[operator]
    t = ann.beat_times_s
    return t[(t >= start_s) & (t < end_s)] - start_s


def _assert_coherent(view: ReportView) -> None:
    """Figures of one reading agree with one another."""
    m = view.measurements
    marks = np.asarray(view.beats.r_peaks_s)
    assert m.n_beats_cloud == len(marks)
    if m.ventricular_run_beats and m.ventricular_run_s:
        assert m.ventricular_run_bpm == pytest.approx(60 * (m.ventricular_run_beats - 1) / m.ventricular_run_s,
                                                      abs=0.15)
    for f in view.assessment.findings:
        if f.code in ("nsvt", "vt_sustained"):
            assert m.ventricular_run_bpm is not None and m.ventricular_run_bpm >= 100
            assert f"{m.ventricular_run_beats} ventricular beats" in f.detail
    for e in m.events:
        if e.beats >= 2 and e.hr_bpm is not None and e.type != "vf":
            assert e.hr_bpm == pytest.approx(60 * (e.beats - 1) / (e.end_s - e.start_s), rel=0.02)


def _marks_match(view: ReportView, truth_s: np.ndarray) -> tuple[float, float]:
    marks = np.asarray(view.beats.r_peaks_s)
    hit = [np.min(np.abs(marks - t)) <= MATCH_S for t in truth_s] if len(marks) else [False] * len(truth_s)
    real = [np.min(np.abs(truth_s - m)) <= MATCH_S for m in marks] if len(truth_s) else []
    return float(np.mean(hit)), float(np.mean(real)) if real else 0.0


def test_mitdb_205_ventricular_tachycardia() -> None:
    start, end = 1450.5, 1466.5  # the annotated VT run at 1460.5 s is at the strip's end, as on an alert strip
    view, _ = _view("mitdb/205", start, end, kind="wide_complex_run", watch_hr=150.0)
    _assert_coherent(view)
    m = view.measurements
    truth = _annotated_beats("mitdb/205", start, end)
    se, ppv = _marks_match(view, truth)
    assert se >= 0.9 and ppv >= 0.9, (se, ppv)  # beat marks right on the wide complexes too
    vt = [e for e in m.events if e.type == "vt"]
    assert vt, m.events
    run = max(vt, key=lambda e: e.beats)
    annotated_run = (10.2, 14.4)  # 12 V beats at 159 bpm (annotations, strip seconds)
    assert run.start_s < annotated_run[1] and run.end_s > annotated_run[0]
    assert run.beats >= 5 and run.hr_bpm is not None and run.hr_bpm > 100
    assert any(f.code in ("nsvt", "vt_sustained") for f in view.assessment.findings)
    # the watch's 150 bpm (its rate in the run) is shown beside the strip's mean rate, not merged into it
    assert m.hr_bpm is not None and m.hr_bpm < 110 and m.hr_source == "strip"
    assert any("The watch reported 150 bpm" in c for c in m.contradictions)
    html = render_report_html(view.data)
    assert "Contradictions between hops" in html and "Monitor events" in html


def test_mitdb_207_ventricular_flutter() -> None:
    start, end = 31.0, 51.0  # VFL from 40.8 s
    view, _ = _view("mitdb/207", start, end, kind="wide_complex_run", watch_hr=150.0)
    _assert_coherent(view)
    m = view.measurements
    assert m.rhythm in ("vf", "vt") or any(c.rhythm in ("vf", "vt") for c in m.candidates), (m.rhythm, m.candidates)
    assert any(f.code in ("vf", "possible_vf", "nsvt", "vt_sustained", "vt_unquantified", "possible_vt")
               for f in view.assessment.findings)


def test_vfdb_426_ventricular_fibrillation() -> None:
    start, end = 636.0, 656.0  # VF from 645.7 s
    view, _ = _view("vfdb/426", start, end, kind="wide_complex_run", watch_hr=210.0)
    _assert_coherent(view)
    m = view.measurements
    vf = [e for e in m.events if e.type == "vf"]
    assert vf and vf[0].start_s <= 12.0 and vf[0].end_s >= 19.0, m.events
    assert view.assessment.findings[0].code == "vf" and view.assessment.severity == "critical"


def test_mitdb_201_atrial_fibrillation() -> None:
    start, end = 100.0, 130.0  # AFIB throughout
    view, _ = _view("mitdb/201", start, end, kind="irregular_rhythm", watch_hr=95.0)
    _assert_coherent(view)
    m = view.measurements
    assert m.rhythm == "af"
    truth = _annotated_beats("mitdb/201", start, end)
    annotated_hr = 60 * (len(truth) - 1) / (truth[-1] - truth[0])
    assert m.hr_bpm == pytest.approx(annotated_hr, rel=0.1)
    se, ppv = _marks_match(view, truth)
    assert se >= 0.95 and ppv >= 0.95
    assert any(e.type == "af" for e in m.events)
    assert not any("The watch reported" in c for c in m.contradictions)
