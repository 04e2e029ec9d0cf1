"""One rhythm from the reader, the rules and the events (pure)."""

from __future__ import annotations

import numpy as np

from shared.analysis.events import Event
from shared.analysis.reading import Reading, combine

P_SINUS = {"sinus": 0.9, "af": 0.02, "other": 0.05, "vt": 0.01, "vf": 0.01, "noise": 0.01}
NONE = np.zeros(0)


def _combine(p: dict[str, float] | None, **kw: object) -> Reading:
    args = {"frame_vt": NONE, "frame_vf": NONE, "candidate_threshold": 0.3, "rules": "sinus",
            "rules_confidence": 0.9, "hr_bpm": 72.0, "events": [], "asystole": False}
    args.update(kw)
    return combine(p, **args)  # type: ignore[arg-type]


def test_the_reader_names_sinus_by_the_measured_rate() -> None:
    assert _combine(P_SINUS).rhythm == "sinus"
    assert _combine(P_SINUS, hr_bpm=130.0, rules="sinus_tachycardia").rhythm == "sinus_tachycardia"
    assert _combine(P_SINUS, hr_bpm=45.0, rules="sinus_bradycardia").rhythm == "sinus_bradycardia"


def test_a_disagreement_with_the_rules_is_a_note_not_a_silent_pick() -> None:
    r = _combine(P_SINUS, rules="af", rules_confidence=0.7)
    assert r.rhythm == "sinus" and r.rules_rhythm == "af"
    assert any("rules read af" in n for n in r.notes)
    assert not any("rules read" in n for n in _combine(P_SINUS).notes)


def test_noise_is_inconclusive_but_a_possible_vf_is_still_named() -> None:
    p = {"sinus": 0.05, "af": 0.05, "other": 0.05, "vt": 0.05, "vf": 0.3, "noise": 0.5}
    r = _combine(p)
    assert r.rhythm == "inconclusive"
    assert [(c.rhythm, c.source) for c in r.candidates] == [("vf", "reader")]
    assert any("possible VF" in n for n in r.notes)


def test_a_frame_burst_makes_a_candidate_only_when_it_lasts() -> None:
    one_frame = np.zeros(50)
    one_frame[20] = 0.8  # averaged over 3 frames: 0.27, under the threshold
    assert _combine(P_SINUS, frame_vt=one_frame).candidates == ()
    held = np.zeros(50)
    held[20:24] = 0.6
    assert [c.rhythm for c in _combine(P_SINUS, frame_vt=held).candidates] == ["vt"]


def test_events_and_rules_add_candidates_and_asystole_wins() -> None:
    asys = Event("asystole", 10.0, 16.0, 0, None, 0.9)
    r = _combine(P_SINUS, events=[asys], asystole=True)
    assert r.rhythm == "asystole" and [c.rhythm for c in r.candidates] == ["asystole"]
    rules_vt = _combine(P_SINUS, rules="vt", rules_confidence=0.6)
    assert [(c.rhythm, c.source) for c in rules_vt.candidates] == [("vt", "rules")]


def test_without_a_reader_the_rules_decide_and_say_so() -> None:
    r = _combine(None, rules="af", rules_confidence=0.7)
    assert r.rhythm == "af" and r.confidence == 0.7
    assert any("no rhythm reader" in n for n in r.notes)


P_OTHER = {"sinus": 0.09, "af": 0.07, "other": 0.83, "vt": 0.0, "vf": 0.01, "noise": 0.0}


def test_no_readable_segment_names_no_rhythm_but_vf_still_speaks() -> None:
    r = _combine(P_OTHER, rules="inconclusive", rules_confidence=0.0, unreadable=True)
    assert r.rhythm == "inconclusive" and any("no readable segment" in n for n in r.notes)
    vf = {"sinus": 0.0, "af": 0.0, "other": 0.05, "vt": 0.1, "vf": 0.85, "noise": 0.0}
    assert _combine(vf, rules="inconclusive", rules_confidence=0.0, unreadable=True).rhythm == "vf"


def test_a_hesitant_reader_defers_to_confident_rules_only() -> None:
    hesitant = {"sinus": 0.02, "af": 0.41, "other": 0.57, "vt": 0.0, "vf": 0.0, "noise": 0.0}
    r = _combine(hesitant, rules="af", rules_confidence=0.8)
    assert r.rhythm == "af" and any("hesitated" in n for n in r.notes)
    assert _combine(hesitant, rules="af", rules_confidence=0.5).rhythm == "other"  # rules unsure too
    assert _combine(P_OTHER, rules="af", rules_confidence=0.9).rhythm == "other"  # the reader is sure
    hesitant_vt = {"sinus": 0.35, "af": 0.0, "other": 0.05, "vt": 0.55, "vf": 0.05, "noise": 0.0}
    kept = _combine(hesitant_vt, rules="sinus", rules_confidence=0.8, candidate_threshold=0.6)
    assert kept.rhythm == "vt"  # a VT reading is never talked down by the rules


def test_ventricular_rhythm_is_named_by_the_events_covering_the_strip() -> None:
    vt = {"sinus": 0.0, "af": 0.0, "other": 0.01, "vt": 0.75, "vf": 0.24, "noise": 0.0}
    vf_event = Event("vf", 0.0, 20.0, 0, None, 0.99)
    r = _combine(vt, rules="vf", rules_confidence=1.0, events=[vf_event], duration_s=20.0)
    assert r.rhythm == "vf" and any("events name it vf" in n for n in r.notes)
    short = Event("vf", 0.0, 6.0, 0, None, 0.99)
    assert _combine(vt, rules="vf", rules_confidence=1.0, events=[short], duration_s=20.0).rhythm == "vt"


def test_periodic_only_strip_names_no_ventricular_rhythm_but_keeps_the_candidate() -> None:
    vt = {"sinus": 0.0, "af": 0.0, "other": 0.02, "vt": 0.83, "vf": 0.14, "noise": 0.01}
    r = _combine(vt, rules="inconclusive", rules_confidence=0.0, periodic_only=True)
    assert r.rhythm == "inconclusive"
    assert [(c.rhythm, c.probability, c.source) for c in r.candidates] == [("vt", 0.83, "reader")]
    assert any("periodic artefact" in n for n in r.notes)
