"""measurements_from: source preference and the phone's optional fields present or absent."""

from __future__ import annotations

from cloud_expert.reports.beats import BeatMarks, detect_r_peaks
from cloud_expert.reports.measurements import measurements_from
from tests.cloud_expert.factories import FS, make_escalation, synthetic_ecg


def test_old_phone_without_clinical_depth_fields() -> None:
    p = make_escalation(site="s", patient_id="p").payload
    assert p.analysis is not None
    m = measurements_from(p.alert.payload, p.analysis.payload, None)
    assert m.hr_bpm == 180.0 and m.hr_source == "phone" and m.watch_hr_bpm == 182.0
    assert m.pr_ms is None and m.qtc_ms is None and m.ventricular_run_beats is None and m.rhythm == "sinus_tachycardia"


def test_clinical_depth_fields_and_qtc_preference() -> None:
    fields = {"pr_ms": 210.0, "qrs_ms": 96.0, "qt_ms": 380.0, "qtc_bazett_ms": 510.0, "qtc_fridericia_ms": 470.0,
              "ventricular_run_beats": 5, "rhythm_confidence": 0.8, "ectopic_burden": 0.1, "max_rr_s": 3.2}
    p = make_escalation(site="s", patient_id="p", analysis_fields=fields).payload
    assert p.analysis is not None
    m = measurements_from(p.alert.payload, p.analysis.payload, None)
    assert (m.pr_ms, m.qrs_ms, m.qt_ms) == (210.0, 96.0, 380.0)
    assert m.qtc_ms == 470.0 and m.qtc_formula == "Fridericia"
    assert m.ventricular_run_beats == 5 and m.ventricular_run_s is not None
    assert abs(m.ventricular_run_s - 5 * 60 / 182.0) < 1e-9
    assert m.max_rr_s == 3.2
    only_bazett = p.analysis.payload.model_copy(update={"qtc_fridericia_ms": None})
    assert measurements_from(p.alert.payload, only_bazett, None).qtc_formula == "Bazett"


def test_no_analysis_falls_back_to_r_peaks_then_watch() -> None:
    p = make_escalation(site="s", patient_id="p", with_analysis=False).payload
    beats = detect_r_peaks(synthetic_ecg(seconds=10, hr_bpm=60), fs=FS)
    m = measurements_from(p.alert.payload, None, beats)
    assert m.hr_source == "cloud R peaks" and m.hr_bpm is not None and abs(m.hr_bpm - 60) < 1
    assert m.rhythm is None and m.quality is None and m.n_beats_cloud == len(beats.r_peaks_s)
    m = measurements_from(p.alert.payload, None, BeatMarks(r_peaks_s=(), fs=FS))
    assert m.hr_source == "watch" and m.hr_bpm == 182.0 and m.max_rr_s is None


def test_unusable_phone_strip_hr_is_not_trusted() -> None:
    p = make_escalation(site="s", patient_id="p", analysis_fields={"quality": "unusable", "hr_bpm": 20.0}).payload
    assert p.analysis is not None
    m = measurements_from(p.alert.payload, p.analysis.payload, detect_r_peaks(synthetic_ecg(), fs=FS))
    assert m.hr_source == "cloud R peaks"


def test_watch_pause_evidence_counts() -> None:
    p = make_escalation(site="s", patient_id="p", with_analysis=False).payload
    alert = p.alert.payload.model_copy(update={"kind": "pause", "evidence": {"pause_s": 3.4}})
    assert measurements_from(alert, None, None).max_rr_s == 3.4


def test_r_peaks_need_the_rate_and_tolerate_short_strips() -> None:
    import numpy as np
    import pytest

    with pytest.raises(ValueError):
        detect_r_peaks(np.zeros(100), fs=0)
    assert detect_r_peaks(np.zeros(100), fs=FS).r_peaks_s == ()
    beats = detect_r_peaks(synthetic_ecg(seconds=30, hr_bpm=75), fs=FS)
    assert len(beats.r_peaks_s) == 38 and beats.hr_bpm is not None and abs(beats.hr_bpm - 75) < 0.5


def test_the_fast_run_is_the_run_a_report_calls_vt() -> None:
    """A phone that sends `vt_run_beats` (≥ 100 bpm) is read by it: a slow idioventricular run of 4 beats
    beside no fast run is not non-sustained VT. Older phones sent only the any-rate run, which still counts."""
    fields = {"ventricular_run_beats": 4, "vt_run_beats": 0}
    p = make_escalation(site="s", patient_id="p", analysis_fields=fields).payload
    assert p.analysis is not None
    slow_only = p.alert.payload.model_copy(update={"evidence": {}})
    assert measurements_from(slow_only, p.analysis.payload, None).ventricular_run_beats == 0
    fast = p.analysis.payload.model_copy(update={"vt_run_beats": 3})
    assert measurements_from(slow_only, fast, None).ventricular_run_beats == 3
    old = p.analysis.payload.model_copy(update={"vt_run_beats": None})
    assert measurements_from(slow_only, old, None).ventricular_run_beats == 4
