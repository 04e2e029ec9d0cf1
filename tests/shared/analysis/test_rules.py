"""Rhythm rules on hand-set features (pure)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from shared.analysis import rules
from shared.analysis.rules import AF_DRR, RhythmFeatures, classify

REGULAR = RhythmFeatures(
    hr_bpm=80.0, n_beats=14, n_nn=8, nrmssd=0.03, drr=0.02, sampen=None, tpr=1.0, p_consistency=0.95,
    qrs_ms=90.0, quality="good", longest_vt_run=0, vt_run_s=0.0, duration_s=11.5, vf_frequency_hz=None,
    vf_concentration=0.0, organised=True, asystole_s=0.0,
)


def test_a_short_regular_strip_is_sinus() -> None:
    assert classify(REGULAR)[0] == "sinus"


def test_a_short_clearly_irregular_strip_is_not_called_sinus() -> None:
    """Too few NN intervals (or votes) for AF, beat-to-beat irregular, P waves uncertain: 'other', AF open."""
    irregular = replace(REGULAR, nrmssd=0.35, drr=0.25, p_consistency=0.5)
    rhythm, _confidence, notes = classify(irregular)
    assert rhythm == "other"
    assert any("AF not confirmed, not excluded" in n for n in notes)


def test_a_short_irregular_strip_without_p_waves_is_af_with_less_confidence() -> None:
    """Both signs a short strip can show — irregular RR and no repeating P wave — read as AF, at half the
    confidence the full rule would give."""
    rhythm, confidence, notes = classify(replace(REGULAR, nrmssd=0.35, drr=0.25, p_consistency=0.2))
    assert rhythm == "af" and confidence <= 0.5
    assert any("short series" in n for n in notes)
    assert classify(replace(REGULAR, nrmssd=0.35, drr=0.25, p_consistency=None))[0] == "other"  # P not judged


def test_irregularity_needs_enough_intervals_to_count() -> None:
    """With few intervals one odd interval moves two of the few |ΔRR| and so their median: not a rhythm."""
    irregularity = rules.irregularity(np.array([0.8, 0.8, 1.2, 0.8, 0.8]))  # one long interval among five
    assert irregularity[1] is not None and irregularity[1] > AF_DRR  # it does look irregular…
    few = replace(REGULAR, n_nn=5, nrmssd=irregularity[0], drr=irregularity[1])
    assert classify(few)[0] == "sinus"  # …but five intervals are too few to say so
    eight = rules.irregularity(np.array([0.8, 0.8, 0.8, 1.2, 0.8, 0.8, 0.8, 0.8]))
    assert eight[1] is not None and eight[1] < AF_DRR  # among eight, the median |ΔRR| ignores it


def test_one_irregularity_measure_alone_does_not_block_sinus() -> None:
    """Sinus arrhythmia raises RMSSD but changes smoothly: median |ΔRR| stays small."""
    assert classify(replace(REGULAR, nrmssd=0.15, drr=0.04))[0] == "sinus"
