"""Every expert rule at, just below and just above its threshold, and with the value missing (None)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from cloud_expert.reports import rules
from cloud_expert.reports.measurements import Measurements
from cloud_expert.reports.rules import PastEpisode, assess, care_plan, summarize_history

NOW = datetime(2025, 11, 27, 12, 0, tzinfo=UTC)
EMPTY = Measurements(alert_kind="tachycardia")


def codes(findings: list[rules.Finding]) -> list[str]:
    return [f.code for f in findings]


def m(**kwargs: object) -> Measurements:
    return replace(EMPTY, **kwargs)  # type: ignore[arg-type]


def test_every_rule_is_silent_when_nothing_was_measured() -> None:
    for rule in rules.EPISODE_RULES:
        assert rule(EMPTY) == [], rule.__name__
    assert rules.rule_qtc(EMPTY) == []
    assert rules.rule_af(EMPTY, []) == []
    history = summarize_history([], now=NOW)
    assert rules.rule_qtc_change(EMPTY, history) == []
    result = assess(EMPTY, [], now=NOW)
    assert result.findings == () and result.severity == "normal"
    assert any("Not measured: PR, QRS, QTc" in n for n in result.notes)


@pytest.mark.parametrize(("qtc", "sex", "expected"), [
    (None, None, []), (469.0, None, []), (470.0, None, []), (471.0, None, ["qtc_prolonged"]),
    (475.0, "female", []), (481.0, "female", ["qtc_prolonged"]), (475.0, "male", ["qtc_prolonged"]),
    (500.0, None, ["qtc_prolonged"]), (501.0, "female", ["qtc_high_risk"]),
])
def test_qtc(qtc: float | None, sex: rules.Sex | None, expected: list[str]) -> None:
    found = rules.rule_qtc(m(qtc_ms=qtc, qtc_formula="Fridericia"), sex=sex)
    assert codes(found) == expected
    assert all(f.citation == rules.QT_AHA_2010 for f in found)


def test_qtc_high_risk_is_high_and_says_the_formula() -> None:
    (f,) = rules.rule_qtc(m(qtc_ms=520.0, qtc_formula="Bazett"))
    assert f.severity == "high" and "Bazett" in f.detail and "2010" in f.citation


@pytest.mark.parametrize(("beats", "seconds", "rhythm", "expected", "severity"), [
    (None, None, None, [], None),
    (2, 1.0, None, [], None),
    (3, 1.2, None, ["nsvt"], "high"),
    (3, None, None, ["nsvt"], "high"),
    (60, 29.9, None, ["nsvt"], "high"),
    (61, 30.0, None, ["vt_sustained"], "critical"),
    (None, None, "vt", ["vt_unquantified"], "high"),
    (None, None, "vf", ["vf"], "critical"),
])
def test_ventricular(beats: int | None, seconds: float | None, rhythm: str | None, expected: list[str],
                     severity: str | None) -> None:
    found = rules.rule_ventricular(m(ventricular_run_beats=beats, ventricular_run_s=seconds, rhythm=rhythm))
    assert codes(found) == expected
    if found:
        assert found[0].severity == severity and "ventricular" in found[0].citation.lower()


@pytest.mark.parametrize(("max_rr", "expected"), [
    (None, []), (1.9, []), (2.0, ["pause_noted"]), (2.99, ["pause_noted"]), (3.0, ["pause_significant"]),
])
def test_pause(max_rr: float | None, expected: list[str]) -> None:
    found = rules.rule_pause(m(max_rr_s=max_rr))
    assert codes(found) == expected
    assert all(f.citation == rules.BRADY_ACC_2018 for f in found)


@pytest.mark.parametrize(("hr", "expected"), [
    (None, []), (50.0, []), (49.0, ["brady"]), (40.0, ["brady"]), (39.0, ["brady_marked"]),
])
def test_bradycardia(hr: float | None, expected: list[str]) -> None:
    assert codes(rules.rule_bradycardia(m(hr_bpm=hr, hr_source="phone"))) == expected


@pytest.mark.parametrize(("hr", "expected"), [(None, []), (149.0, []), (150.0, ["tachy_150"])])
def test_tachycardia(hr: float | None, expected: list[str]) -> None:
    assert codes(rules.rule_tachycardia(m(hr_bpm=hr))) == expected


@pytest.mark.parametrize(("pr", "rhythm", "expected"), [
    (None, None, []), (200.0, "sinus", []), (201.0, "sinus", ["av1"]), (301.0, None, ["av1_marked"]),
    (260.0, "af", []),  # no P waves in AF: a PR value there is an artefact, not AV block
])
def test_pr(pr: float | None, rhythm: str | None, expected: list[str]) -> None:
    assert codes(rules.rule_pr(m(pr_ms=pr, rhythm=rhythm))) == expected


@pytest.mark.parametrize(("qrs", "hr", "expected"), [
    (None, 150.0, []), (119.0, 80.0, []), (120.0, 80.0, ["wide_qrs"]), (120.0, None, ["wide_qrs"]),
    (140.0, 101.0, ["wide_complex_tachy"]),
])
def test_qrs(qrs: float | None, hr: float | None, expected: list[str]) -> None:
    found = rules.rule_qrs(m(qrs_ms=qrs, hr_bpm=hr))
    assert codes(found) == expected


def test_af_new_recurrent_and_rapid() -> None:
    af = m(rhythm="af", hr_bpm=120.0)
    assert codes(rules.rule_af(af, [])) == ["af_new", "af_rapid"]
    new = rules.rule_af(af, [])[0]
    assert "CHA2DS2-VASc" in new.detail and new.citation == rules.AF_ESC_2020
    past = [PastEpisode(at=NOW - timedelta(days=3), kind="irregular_rhythm", level="urgent", rhythm="af")]
    assert codes(rules.rule_af(m(rhythm="afl", hr_bpm=None), past)) == ["af_recurrent"]
    assert codes(rules.rule_af(m(rhythm="sinus"), [])) == []
    assert codes(rules.rule_af(m(rhythm=None), [])) == []


def test_qtc_increase_from_the_patients_baseline() -> None:
    past = [PastEpisode(at=NOW - timedelta(days=d), kind="pause", level="urgent", qtc_ms=440.0) for d in (5, 3)]
    history = summarize_history(past, now=NOW)
    assert history.baseline_qtc_ms == 440.0
    assert codes(rules.rule_qtc_change(m(qtc_ms=500.0), history)) == []
    assert codes(rules.rule_qtc_change(m(qtc_ms=501.0), history)) == ["qtc_increase"]
    one = summarize_history(past[:1], now=NOW)  # one earlier value is no baseline
    assert one.baseline_qtc_ms is None and rules.rule_qtc_change(m(qtc_ms=560.0), one) == []


def test_overall_severity_is_the_worst_finding_and_findings_come_worst_first() -> None:
    result = assess(m(hr_bpm=38.0, hr_source="phone", pr_ms=220.0, max_rr_s=3.4, qrs_ms=125.0), [], now=NOW)
    assert result.severity == "high"
    assert result.findings[0].severity == "high"
    assert set(codes(list(result.findings))) == {"brady_marked", "pause_significant", "wide_qrs", "av1"}
    assert all(f.citation for f in result.findings)
    assert any("pacing" in r for r in result.recommendations)
    assert result.recommendations[-1].startswith("A clinician must review")
    assert rules.max_severity([]) == "normal"


def test_assessment_json_is_plain() -> None:
    import json

    out = assess(m(hr_bpm=38.0, hr_source="phone"), [], now=NOW).to_json()
    assert json.loads(json.dumps(out))["findings"][0]["code"] == "brady_marked"
    assert out["measurements"]["hr_bpm"] == 38.0


# --- history and care plan ---------------------------------------------------------------------------------
def _af(days_ago: float, hr: float | None = 70.0) -> PastEpisode:
    return PastEpisode(at=NOW - timedelta(days=days_ago), kind="irregular_rhythm", level="urgent", rhythm="af",
                       hr_bpm=hr)


def test_history_summary_counts_and_trends() -> None:
    past = [_af(40, 60.0), _af(6, 62.0), _af(2, 64.0),
            PastEpisode(at=NOW - timedelta(days=1), kind="pause", level="emergency", hr_bpm=None)]
    h = summarize_history(past, now=NOW)
    assert h.n_episodes == 3  # 40 days ago is outside the 30-day window
    assert h.by_label == {"atrial fibrillation/flutter": 2, "pause": 1}
    assert h.by_level == {"urgent": 2, "emergency": 1}
    assert h.baseline_hr_bpm == 62.0 and h.baseline_n == 3
    assert [v for _, v in h.hr_trend] == [60.0, 62.0, 64.0]


def test_care_plan_first_episode() -> None:
    (line,) = care_plan(m(hr_bpm=38.0), [], summarize_history([], now=NOW), now=NOW)
    assert "First recorded episode" in line


def test_care_plan_recurrence_and_baseline() -> None:
    past = [_af(9, 60.0), _af(5, 62.0), _af(1, 64.0)]
    current = m(alert_kind="irregular_rhythm", rhythm="af", hr_bpm=38.0, hr_source="phone")
    plan = care_plan(current, past, summarize_history(past, now=NOW), now=NOW)
    assert plan[0] == ("3rd atrial fibrillation/flutter episode in 7 days (1 in the 7 days before) — burden rising.")
    assert plan[1].startswith("HR 38 bpm vs this patient's baseline 62 bpm (-24 bpm")


def test_care_plan_close_to_baseline_and_no_baseline_yet() -> None:
    past = [_af(20, 60.0), _af(15, 64.0)]
    h = summarize_history(past, now=NOW)
    plan = care_plan(m(hr_bpm=66.0), past, h, now=NOW)
    assert plan == ["HR 66 bpm is close to this patient's baseline 62 bpm."]
    one = [_af(20, 60.0)]
    plan = care_plan(m(hr_bpm=66.0), one, summarize_history(one, now=NOW), now=NOW)
    assert "No personal HR baseline yet (1 earlier episode(s)" in plan[0]
    # missing current HR: no comparison line, and no crash
    assert care_plan(m(hr_bpm=None), past, h, now=NOW) == []


def test_care_plan_qtc_and_emergencies() -> None:
    past = [PastEpisode(at=NOW - timedelta(days=d), kind="pause", level="emergency", qtc_ms=440.0, hr_bpm=60.0)
            for d in (10, 4)]
    plan = care_plan(m(qtc_ms=505.0, hr_bpm=61.0), past, summarize_history(past, now=NOW), now=NOW)
    assert "QTc 505 ms vs baseline 440 ms (+65 ms)." in plan
    assert any(line.startswith("2 earlier emergency-level episode(s) in 30 days") for line in plan)


def test_episode_label() -> None:
    assert rules.episode_label("irregular_rhythm", "af") == "atrial fibrillation/flutter"
    assert rules.episode_label("wide_complex_run", "vt") == "ventricular arrhythmia"
    assert rules.episode_label("wide_complex_run", None) == "wide complex run"
