"""Segment quality: noise stays unusable, an organised rhythm that fools both SQIs (VT) does not."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shared.analysis import strip as analysis
from shared.analysis.quality import ORGANISED_PERIODICITY, assess_segments, is_organised, periodicity
from shared.analysis.strip import analyze_strip
from shared.ecg.drill import synthetic_vt
from shared.ecg.signal import Signal, resample
from shared.ecg.sources import load_wfdb

FS = analysis.ANALYSIS_FS


def _segments(sig: Signal) -> list:
    x = resample(sig, FS).samples_mv
    cleaned, peaks, sq, _lf, _beats = analysis._detect(x, FS)
    return assess_segments(x, cleaned, FS, peaks, sq)


def test_periodicity_finds_the_beat_period_of_a_regular_rhythm_and_none_in_noise() -> None:
    vt = synthetic_vt(10.0, FS, rate_bpm=180.0).samples_mv
    peak, lag = periodicity(vt, FS)
    assert peak > 0.9 and lag == pytest.approx(60 / 180, abs=0.02)
    noise = np.random.default_rng(0).normal(0.0, 0.3, int(10 * FS))
    assert periodicity(noise, FS)[0] < ORGANISED_PERIODICITY
    assert periodicity(np.zeros(10), FS) == (0.0, 0.0)


def test_organised_needs_the_detectors_beats_at_the_signals_period() -> None:
    vt = synthetic_vt(5.0, FS, rate_bpm=180.0).samples_mv
    on_period = np.arange(0.4, 5.0, 1 / 3)
    assert is_organised(vt, FS, on_period)
    assert is_organised(vt, FS, np.delete(on_period, np.s_[2::3]))  # a detector missing every third beat
    assert not is_organised(vt, FS, np.arange(0.4, 5.0, 0.45))  # beats at 1.35× the period: no repeat there
    assert not is_organised(vt, FS, on_period[:3])  # too few beats to judge


def test_only_a_tachycardia_is_rescued() -> None:
    """A slow regular wide rhythm that fools both tests is mostly paced: 'inconclusive' is safer than 'sinus'."""
    slow = synthetic_vt(5.0, FS, rate_bpm=70.0).samples_mv
    beats = np.arange(0.4, 5.0, 60 / 70)
    assert periodicity(slow, FS)[0] >= ORGANISED_PERIODICITY
    assert not is_organised(slow, FS, beats)


def test_sinusoidal_vt_is_not_dismissed_as_noise_but_not_named_either() -> None:
    """Wide, near-sinusoidal complexes have Gaussian-like kurtosis: before the organisation test both of
    this strip's segments were 'unusable'. They are readable now, but with no clean segment anywhere one
    lead cannot tell sinusoidal VT from periodic artefact, and the analysis says exactly that."""
    sig = synthetic_vt(10.0, 250.0)
    segments = _segments(sig)
    assert all(s.label == "noisy" and s.organised for s in segments)
    result = analyze_strip(sig.samples_mv, sig.fs)
    assert result.quality == "acceptable" and result.rhythm == "inconclusive"
    assert any("sinusoidal VT or periodic artefact" in n for n in result.notes or [])
    if result.rhythm_probabilities is not None:  # the reader's VT stays a candidate: the edge still escalates
        assert any(c.rhythm in ("vt", "vf") for c in result.candidates)


@pytest.mark.parametrize("hz", [2.0, 2.8])
def test_periodic_motion_artefact_is_never_read_as_vt(hz: float) -> None:
    """A running-pace sinusoid with a harmonic and no QRS: the rules alone would call it VT (wide, fast)."""
    t = np.arange(int(11.5 * FS)) / FS
    rng = np.random.default_rng(3)
    x = 0.5 * np.sin(2 * np.pi * hz * t) + 0.2 * np.sin(4 * np.pi * hz * t + 1.0) + rng.normal(0, 0.05, len(t))
    result = analyze_strip(x, FS)
    assert result.rhythm == "inconclusive"
    assert any("periodic artefact" in n for n in result.notes or [])


@pytest.mark.data
def test_an_onset_segment_is_judged_in_halves(mitdb: Path) -> None:
    """205 from 289.6 s: the second 5.75 s segment is sinus, then the VT run from 298.8 s. Organised in
    neither rhythm as a whole, it is rescued because each half is usable or organised on its own."""
    s = load_wfdb(mitdb / "205", start_s=289.6, end_s=301.1)
    x = resample(s, FS).samples_mv
    cleaned, peaks, sq, _lf, _beats = analysis._detect(x, FS)
    second = assess_segments(x, cleaned, FS, peaks, sq)[-1]
    lo, hi = int(second.start_s * FS), int(second.end_s * FS)
    inside = (sq >= lo) & (sq < hi)
    assert second.bsqi < 0.7  # neurokit misses the run's wide beats
    assert not is_organised(cleaned[lo:hi], FS, sq[inside] / FS)  # not as a whole…
    assert second.label == "noisy" and second.organised  # …but half by half


def test_ventricular_flags_must_match_the_beats() -> None:
    x = np.random.default_rng(0).normal(0.0, 0.1, int(5 * FS))
    with pytest.raises(ValueError, match="one flag per beat"):
        assess_segments(x, x, FS, np.array([100, 400]), np.array([100, 400, 700]), np.array([True, False]))


def test_noise_is_not_organised() -> None:
    rng = np.random.default_rng(1)
    sig = Signal(rng.normal(0.0, 0.3, 2500), 250.0, "noise", "noise")
    segments = _segments(sig)
    assert all(s.label == "unusable" and not s.organised for s in segments)
    result = analyze_strip(sig.samples_mv, sig.fs)
    assert result.rhythm == "inconclusive" and not result.candidates  # the reader names no rhythm in white noise


@pytest.mark.data
def test_vt_onset_strip_of_205_is_read_not_dismissed(mitdb: Path) -> None:
    """The drill's real VT excerpt (205, run from 298.8 s) as the watch's alert strip: sinus, then the run.
    neurokit misses the run's beats, so the second segment fails agreement; it is organised, so the strip
    is read (NSVT named) instead of 'signal quality too poor'."""
    s = load_wfdb(mitdb / "205", start_s=291.2, end_s=302.0)
    segments = _segments(s)
    assert segments[-1].bsqi < 0.7 and segments[-1].organised
    result = analyze_strip(s.samples_mv, s.fs)
    assert result.quality != "unusable" and result.rhythm != "inconclusive"
    assert (result.ventricular_run_beats or 0) >= 3


def _spike_train(beats_s: np.ndarray, seconds: float) -> np.ndarray:
    """A peaky signal (high kurtosis) with a narrow spike at each beat, over a little noise (not clipped)."""
    t = np.arange(int(seconds * FS)) / FS
    x = np.random.default_rng(2).normal(0.0, 0.01, len(t))
    for b in beats_s:
        x += np.exp(-0.5 * ((t - b) / 0.01) ** 2)
    return x


def test_a_fast_ventricular_run_explains_the_detectors_disagreement() -> None:
    beats = np.arange(0.3, 5.0, 0.33)
    x = _spike_train(beats, 5.0)
    samples = np.round(beats * FS).astype(int)
    only_b = samples[::2]  # neurokit "missed" every other beat
    v = np.zeros(len(samples), dtype=bool)
    v[1::2] = True  # …and the beat model calls exactly those V
    plain = assess_segments(x, x, FS, only_b, samples)
    explained = assess_segments(x, x, FS, only_b, samples, v)
    assert plain[0].bsqi < 0.7 and plain[0].label != "usable"  # at best rescued as organised: noisy
    assert explained[0].bsqi == 1.0 and explained[0].label == "usable"


def test_only_beats_of_a_fast_run_of_three_count_as_ventricular_run() -> None:
    fast = np.round(np.arange(10) * 0.4 * FS).astype(int)  # 150 bpm
    v = np.array([0, 1, 1, 1, 0, 1, 1, 0, 1, 0], dtype=bool)
    assert analysis._in_fast_v_run(v, fast, FS).tolist() == [False, True, True, True] + [False] * 6
    slow = np.round(np.arange(10) * 0.9 * FS).astype(int)  # 67 bpm: paced beats look like this
    assert not analysis._in_fast_v_run(np.ones(10, dtype=bool), slow, FS).any()
