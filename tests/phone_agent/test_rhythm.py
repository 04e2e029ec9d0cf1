"""Rhythm rules on hand-set features (pure)."""

from __future__ import annotations

from dataclasses import replace

from phone_agent.rhythm import RhythmFeatures, classify

REGULAR = RhythmFeatures(
    hr_bpm=80.0, n_beats=14, n_nn=8, nrmssd=0.03, drr=0.02, sampen=None, tpr=1.0, p_consistency=0.95,
    qrs_ms=90.0, quality="good", longest_vt_run=0, vt_run_s=0.0, duration_s=11.5, vf_frequency_hz=None,
    vf_concentration=0.0, organised=True, asystole_s=0.0,
)


def test_a_short_regular_strip_is_sinus() -> None:
    assert classify(REGULAR)[0] == "sinus"


def test_a_short_clearly_irregular_strip_is_not_called_sinus() -> None:
    """Too few NN intervals (or votes) for AF, but beat-to-beat irregular: 'other', saying AF is open."""
    irregular = replace(REGULAR, nrmssd=0.35, drr=0.25, p_consistency=0.3)
    rhythm, _confidence, notes = classify(irregular)
    assert rhythm == "other"
    assert any("AF not confirmed, not excluded" in n for n in notes)


def test_irregularity_needs_a_few_intervals_to_count() -> None:
    """One odd interval among three is not a rhythm: the rate decides."""
    assert classify(replace(REGULAR, n_nn=3, nrmssd=0.6, drr=0.6))[0] == "sinus"


def test_one_irregularity_measure_alone_does_not_block_sinus() -> None:
    """Sinus arrhythmia raises RMSSD but changes smoothly: median |ΔRR| stays small."""
    assert classify(replace(REGULAR, nrmssd=0.15, drr=0.04))[0] == "sinus"
