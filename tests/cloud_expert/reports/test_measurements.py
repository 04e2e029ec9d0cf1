"""measurements_from: one reading, its runs described coherently, and every contradiction said in words."""

from __future__ import annotations

import numpy as np
import pytest

from cloud_expert.reports.beats import detect_r_peaks
from cloud_expert.reports.measurements import longest_run, measurements_from, run_rate
from shared.messages import AlertPayload, AnalysisPayload, Candidate, MonitorEvent
from tests.cloud_expert.factories import FS, make_escalation, synthetic_ecg


def _phone(**fields: object) -> tuple[AlertPayload, AnalysisPayload]:
    p = make_escalation(site="s", patient_id="p", analysis_fields=fields).payload
    assert p.analysis is not None
    return p.alert.payload, p.analysis.payload


def test_the_reading_is_the_source_and_the_phone_a_cross_check() -> None:
    alert, phone = _phone()
    reading = phone.model_copy(update={"hr_bpm": 150.0, "rhythm": "svt", "reader": "abc"})
    m = measurements_from(alert, reading, phone)
    assert m.hr_bpm == 150.0 and m.hr_source == "strip" and m.rhythm == "svt"
    assert m.reading_source.startswith("strip re-analysis")
    said = " ".join(m.contradictions)
    assert "The phone read sinus tachycardia" in said and "re-analysis of the same strip reads svt" in said
    assert "The phone measured 180 bpm" in said


def test_without_a_re_analysis_the_phone_reading_is_used_and_said() -> None:
    alert, phone = _phone()
    m = measurements_from(alert, None, phone)
    assert m.hr_source == "phone" and m.reading_source == "phone" and m.rhythm == "sinus_tachycardia"
    assert not any("The phone read" in c for c in m.contradictions)


def test_nothing_analysed_falls_back_to_the_watch_and_says_so() -> None:
    alert, _ = _phone()
    m = measurements_from(alert, None, None)
    assert m.hr_source == "watch" and m.hr_bpm == 182.0
    assert m.contradictions == ("The strip could not be analysed: the figures are the watch's alone.",)


def test_unusable_strip_hr_is_not_trusted() -> None:
    alert, phone = _phone(quality="unusable", hr_bpm=20.0)
    assert measurements_from(alert, phone, None).hr_source == "watch"


def test_a_watch_rate_far_from_the_strip_is_a_contradiction() -> None:
    alert, phone = _phone(hr_bpm=98.0)
    slow_watch = alert.model_copy(update={"hr_bpm": 69.0})
    m = measurements_from(slow_watch, phone, None)
    assert any("The watch reported 69 bpm" in c and "give 98 bpm" in c for c in m.contradictions)
    close = alert.model_copy(update={"hr_bpm": 92.0})
    assert not any("The watch reported" in c for c in measurements_from(close, phone, None).contradictions)


def test_a_run_is_beats_duration_and_the_rate_they_imply() -> None:
    vt = MonitorEvent(type="vt", start_s=8.0, end_s=10.4, beats=7, hr_bpm=150.0, probability=0.9)
    alert, phone = _phone(vt_run_beats=4, vt_run_s=1.2, events=[vt])
    m = measurements_from(alert, phone, None)
    assert (m.ventricular_run_beats, m.ventricular_run_s) == (7, 2.4)
    assert m.ventricular_run_bpm == pytest.approx(60 * 6 / 2.4)
    # the shorter ≥ 3-beat run when no event is longer
    alert, phone = _phone(vt_run_beats=3, vt_run_s=0.8)
    assert longest_run(phone) == (3, 0.8) and run_rate(3, 0.8) == 150.0


def test_old_phones_any_rate_run_counts_without_a_duration() -> None:
    alert, phone = _phone(ventricular_run_beats=4)
    m = measurements_from(alert, phone, None)
    assert m.ventricular_run_beats == 4 and m.ventricular_run_s is None and m.ventricular_run_bpm is None


def test_an_alert_kind_the_strip_does_not_confirm_is_named() -> None:
    alert, phone = _phone()
    wide = alert.model_copy(update={"kind": "wide_complex_run"})
    assert any("shows no vt / vf event" in c for c in measurements_from(wide, phone, None).contradictions)
    with_candidate = phone.model_copy(update={"candidates": [Candidate(rhythm="vt", probability=0.4, source="reader")]})
    assert not any("shows no" in c for c in measurements_from(wide, with_candidate, None).contradictions)


def test_rules_and_reader_disagreeing_inside_one_analysis_is_shown() -> None:
    alert, phone = _phone(rules_rhythm="af", rhythm_probabilities={"sinus": 0.8, "af": 0.2})
    assert any("rules read af" in c for c in measurements_from(alert, phone, None).contradictions)


def test_r_peaks_need_the_rate_and_tolerate_short_strips() -> None:
    with pytest.raises(ValueError):
        detect_r_peaks(np.zeros(100), fs=0)
    assert detect_r_peaks(np.zeros(100), fs=FS).r_peaks_s == ()
    beats = detect_r_peaks(synthetic_ecg(seconds=30, hr_bpm=75), fs=FS)
    assert len(beats.r_peaks_s) == 38 and beats.hr_bpm is not None and abs(beats.hr_bpm - 75) < 0.5


def test_payload_of_an_older_phone_still_validates() -> None:
    """Events, candidates and the reader's fields are optional on the bus."""
    _, phone = _phone()
    assert isinstance(phone, AnalysisPayload) and phone.events == [] and phone.candidates == []
