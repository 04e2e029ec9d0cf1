"""Signal quality of a strip, per segment: can the beats found in it be trusted?

Two independent QRS detectors (neurokit2's and the repo's streaming Pan–Tompkins) agree on real
beats and disagree on noise, so their agreement (bSQI, Li et al. 2008) is the core score. Flat or
clipped stretches (lead off, amplifier saturation) and noise-like amplitude statistics (kurtosis near
Gaussian) are checked apart, because both detectors can agree on nothing, or on the same artefact.

Ventricular tachycardia fails both tests although it is the signal that matters most: neurokit misses
most of its fast wide complexes (low agreement) and its near-sinusoidal shape has Gaussian-like
kurtosis. What sets it apart from noise is organisation: the signal repeats itself at the beat period.
A segment failing only those two tests is read as `noisy` rather than `unusable` when it is periodic
(Pearson self-correlation ≥ `ORGANISED_PERIODICITY`) at the period of the streaming detector's own beats
there, at a tachycardia rate (`organised`). Measured on MIT-BIH 5 s segments (docs/phone-analysis.md,
best lag over 0.25–2 s): 205's VT run 0.61–0.77, 105's noisy stretch 0.19–0.38.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import kurtosis

SEGMENT_S = 5.0
MAX_SEGMENTS = 64  # the payload carries at most 64 labels: longer strips get longer segments
MATCH_S = 0.1  # two detections of one QRS lie within 100 ms of each other
LEAD_OFF_STD_MV = 0.005  # a connected lead always shows some baseline activity; a digital flat line does not
SATURATION_FRACTION = 0.08  # this share of samples pinned at the extremes → clipped (amplifier saturation)
NOISE_KURTOSIS = 4.0  # ECG is peaky (kurtosis 5–30); Gaussian noise sits at 3, slow motion artefact lower
USABLE_BSQI = 0.9
NOISY_BSQI = 0.7
MAX_RATE_BPM = 300.0
ORGANISED_PERIODICITY = 0.6
ORGANISED_LAGS_S = (0.25, 2.0)  # 240 … 30 bpm
ORGANISED_MIN_BEATS = 4
ORGANISED_PERIOD_TOLERANCE = 0.15  # the autocorrelation's period vs the detector's median RR
ORGANISED_MAX_RR_S = 0.6  # only a tachycardia (≥ 100 bpm) is rescued: see is_organised

SegmentLabel = str  # usable | noisy | unusable


@dataclass(frozen=True, slots=True)
class SegmentQuality:
    start_s: float
    end_s: float
    label: SegmentLabel
    score: float
    bsqi: float
    kurtosis: float
    lead_off: bool
    saturated: bool
    organised: bool = False  # failed only agreement / kurtosis, but repeats at its beats' period: noisy


def segment_length_s(duration_s: float) -> float:
    """5 s segments, longer when the strip would need more than MAX_SEGMENTS of them."""
    return max(SEGMENT_S, math.ceil(duration_s / MAX_SEGMENTS))


def matched(a_s: np.ndarray, b_s: np.ndarray, tolerance_s: float = MATCH_S) -> np.ndarray:
    """For each time in `a_s`, whether some time in sorted `b_s` lies within the tolerance."""
    if len(a_s) == 0 or len(b_s) == 0:
        return np.zeros(len(a_s), dtype=bool)
    idx = np.clip(np.searchsorted(b_s, a_s), 0, len(b_s) - 1)
    prev = np.maximum(idx - 1, 0)
    return np.minimum(np.abs(b_s[idx] - a_s), np.abs(b_s[prev] - a_s)) <= tolerance_s


def bsqi(a_s: np.ndarray, b_s: np.ndarray, tolerance_s: float = MATCH_S) -> float:
    """Agreement of two beat lists (times in s): matched / (|a| + |b| − matched); 1 when both are empty."""
    return _agreement(matched(a_s, b_s, tolerance_s), matched(b_s, a_s, tolerance_s))


def _agreement(match_a: np.ndarray, match_b: np.ndarray) -> float:
    if len(match_a) == 0 and len(match_b) == 0:
        return 1.0
    both = (int(np.sum(match_a)) + int(np.sum(match_b))) / 2
    return float(both / (len(match_a) + len(match_b) - both))


def is_lead_off(raw_mv: np.ndarray) -> bool:
    return bool(np.std(raw_mv) < LEAD_OFF_STD_MV)


def is_saturated(raw_mv: np.ndarray) -> bool:
    """Clipping pins many samples at exactly the same extreme value."""
    if len(raw_mv) == 0:
        return False
    top, bottom = np.max(raw_mv), np.min(raw_mv)
    span = top - bottom
    if span <= 0:
        return False
    pinned = np.mean(raw_mv >= top - 1e-3 * span) + np.mean(raw_mv <= bottom + 1e-3 * span)
    return bool(pinned > SATURATION_FRACTION)


def periodicity(x_mv: np.ndarray, fs: float, lags_s: tuple[float, float] = ORGANISED_LAGS_S) -> tuple[float, float]:
    """(peak, lag in s) of the Pearson correlation between the signal and itself shifted by each lag in
    `lags_s` (inclusive, rounded to samples), in [−1, 1]; (0, 0) when the window is too short or flat."""
    x = np.asarray(x_mv, dtype=float)
    n = len(x)
    lo, hi = max(1, round(lags_s[0] * fs)), min(n - 2, round(lags_s[1] * fs))
    if hi < lo:
        return 0.0, 0.0
    x = x - float(np.mean(x))
    spectrum = np.fft.rfft(x, 2 * n)
    lags = np.arange(lo, hi + 1)
    cross = np.fft.irfft(spectrum * np.conj(spectrum))[lags]  # Σ x[t]·x[t+lag]
    squares = np.concatenate([[0.0], np.cumsum(x * x)])
    head = squares[n - lags]  # Σ x[t]² over t < n − lag
    tail = squares[n] - squares[lags]  # Σ x[t]² over t ≥ lag
    denominator = np.sqrt(head * tail)
    corr = np.divide(cross, denominator, out=np.zeros_like(cross), where=denominator > 0)
    # the shortest lag that (nearly) reaches the peak: a period's multiples correlate as well as the period
    best = int(np.flatnonzero(corr >= corr.max() - 0.05)[0])
    while best + 1 < len(corr) and corr[best + 1] > corr[best]:
        best += 1
    return float(corr[best]), float(lags[best] / fs)


def is_organised(x_mv: np.ndarray, fs: float, beats_s: np.ndarray) -> bool:
    """Whether a segment repeats itself at the period of the beats a detector found in it.

    The period is searched between the detector's short (25th percentile) and median RR, ± the
    tolerance: a detector that misses some beats of a fast run still finds the run's true RR often.
    Only a tachycardia qualifies (median RR ≤ `ORGANISED_MAX_RR_S`): that is where dismissing a segment as
    noise can hide an emergency (VT). Slower organised rhythms that fool both tests are mostly paced
    (pacing spikes split the detectors), and "inconclusive" is the safer reading of those than "sinus".
    """
    if len(beats_s) < ORGANISED_MIN_BEATS:
        return False
    rr = np.diff(np.sort(beats_s))
    median_rr = float(np.median(rr))
    if median_rr > ORGANISED_MAX_RR_S:
        return False
    lags = ((1 - ORGANISED_PERIOD_TOLERANCE) * max(float(np.percentile(rr, 25)), ORGANISED_LAGS_S[0]),
            (1 + ORGANISED_PERIOD_TOLERANCE) * min(median_rr, ORGANISED_LAGS_S[1]))
    return periodicity(x_mv, fs, lags)[0] >= ORGANISED_PERIODICITY


def assess_segments(raw_mv: np.ndarray, cleaned_mv: np.ndarray, fs: float, beats_a: np.ndarray,
                    beats_b: np.ndarray, ventricular_b: np.ndarray | None = None) -> list[SegmentQuality]:
    """Label each segment usable / noisy / unusable from detector agreement and amplitude statistics.

    `beats_a`/`beats_b` are sample indices (at `fs`) from the two independent detectors (b: the streaming
    one, whose beats the organisation test uses). A segment that fails only agreement or kurtosis and is
    not organised as a whole is judged again in halves: an alert strip usually holds the onset of the
    episode, so one 5 s segment may be half sinus, half VT, and organised in neither rhythm throughout.
    """
    duration = len(raw_mv) / fs
    step = segment_length_s(duration)
    n_segments = max(1, round(duration / step))
    order_b = np.argsort(beats_b, kind="stable")
    a_s, b_s = np.sort(beats_a) / fs, np.asarray(beats_b)[order_b] / fs
    match_a, match_b = matched(a_s, b_s), matched(b_s, a_s)  # over the whole strip: no edge effects
    if ventricular_b is not None and len(ventricular_b) != len(b_s):
        raise ValueError(f"ventricular_b needs one flag per beat of beats_b: {len(ventricular_b)} for {len(b_s)}")
    if ventricular_b is not None and len(b_s):
        # a beat only the streaming detector found and the beat model calls V is explained, not noise:
        # neurokit misses wide complexes
        match_b = match_b | np.asarray(ventricular_b, dtype=bool)[order_b]

    def judge(t0: float, t1: float, *, split: bool) -> SegmentQuality:
        lo, hi = int(t0 * fs), int(t1 * fs)
        raw, clean = raw_mv[lo:hi], cleaned_mv[lo:hi]
        lead_off, saturated = is_lead_off(raw), is_saturated(raw)
        in_a, in_b = (a_s >= t0) & (a_s < t1), (b_s >= t0) & (b_s < t1)
        agreement = _agreement(match_a[in_a], match_b[in_b])
        kurt = float(kurtosis(clean, fisher=False)) if np.std(clean) > 0 else 0.0
        too_fast = int(np.sum(in_a)) > (t1 - t0) * MAX_RATE_BPM / 60
        score = agreement * min(1.0, max(0.0, (kurt - 3.0) / (NOISE_KURTOSIS + 1.0 - 3.0)))
        organised = False
        if lead_off or saturated or too_fast:
            label, score = "unusable", min(score, 0.3)
        elif agreement < NOISY_BSQI or kurt < NOISE_KURTOSIS - 0.5:
            organised = is_organised(clean, fs, b_s[in_b])
            if not organised and split:
                mid = (t0 + t1) / 2
                organised = all(h.label != "unusable" and (h.organised or h.label == "usable")
                                for h in (judge(t0, mid, split=False), judge(mid, t1, split=False)))
            label, score = ("noisy", 0.5) if organised else ("unusable", min(score, 0.3))
        elif agreement < USABLE_BSQI or kurt < NOISE_KURTOSIS:
            label = "noisy"
        else:
            label = "usable"
        if lead_off:
            score = 0.0
        return SegmentQuality(round(t0, 3), round(t1, 3), label, round(score, 3), round(agreement, 3),
                              round(kurt, 2), lead_off, saturated, organised)

    return [judge(k * duration / n_segments, (k + 1) * duration / n_segments, split=True)
            for k in range(n_segments)]


def overall_quality(segments: list[SegmentQuality]) -> tuple[str, float]:
    """good: ≥ 80 % usable; acceptable: ≥ 50 % usable or noisy and most of it not unusable; else unusable."""
    if not segments:
        return "unusable", 0.0
    labels = [s.label for s in segments]
    usable = labels.count("usable") / len(labels)
    readable = (labels.count("usable") + labels.count("noisy")) / len(labels)
    score = float(np.mean([s.score for s in segments]))
    if usable >= 0.8:
        return "good", round(max(score, 0.7), 3)
    if readable >= 0.6:
        return "acceptable", round(min(max(score, 0.45), 0.69), 3)
    return "unusable", round(min(score, 0.44), 3)
