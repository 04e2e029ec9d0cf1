"""PR, QRS, QT and QTc per beat: P onsets from the averaged beat, QRS and T ends measured directly.

neurokit2's `ecg_delineate(method="dwt")` put the median QRS of normal-conduction MIT-BIH records at
150–360 ms and scattered T offsets by ±150 ms (measured: docs/phone-analysis.md), and its P onsets cost
three quarters of the whole strip analysis. So QRS bounds come from the slope envelope (where |dx/dt|
falls under a fraction of the QRS's steepest slope), the T end from the classic tangent method (the
steepest T-wave downslope's tangent meets the isoelectric level), and the P onset from the average of
the conducted beats aligned on their QRS onsets (noise averages out, a P wave does not): the P peak is
the largest deflection from the PR segment's level 40–250 ms before the QRS, its onset where that
deflection falls back under 30 % of its height. PR runs from there to the QRS onset. Each interval
is the median over the beats where delineation gave a physiologically possible value, reported with the
number of beats it rests on, so a reader can tell a 30-beat median from a guess.
Ventricular beats are left out (their QRS and QT are not the patient's conducted ones), and so is
the P-wave window's consistency, which is also the rhythm rules' P-wave presence measure.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

log = logging.getLogger(__name__)

#: Per-beat values outside these bounds are delineation failures, not findings (ms).
PR_BOUNDS = (60.0, 400.0)
QRS_BOUNDS = (40.0, 200.0)
QT_BOUNDS = (200.0, 700.0)
MIN_BEATS = 3
P_WINDOW_S = (0.25, 0.08)  # before the R peak: where a conducted P wave lies
PR_WINDOW_BEATS = 16  # the averaged beat for P onsets holds up to twice this many conducted beats
SLOPE_FRACTION = 0.08  # QRS bounds: |slope| under this fraction of the QRS's steepest slope


@dataclass(frozen=True, slots=True)
class Intervals:
    pr_ms: float | None = None
    pr_beats: int = 0
    qrs_ms: float | None = None
    qrs_beats: int = 0
    qt_ms: float | None = None
    qt_beats: int = 0
    qtc_bazett_ms: float | None = None
    qtc_fridericia_ms: float | None = None


def _median(values: np.ndarray, bounds: tuple[float, float]) -> tuple[float | None, int]:
    ok = values[np.isfinite(values) & (values >= bounds[0]) & (values <= bounds[1])]
    if len(ok) < MIN_BEATS:
        return None, len(ok)
    return round(float(np.median(ok)), 1), len(ok)


def measure_intervals(cleaned: np.ndarray, fs: float, peaks: np.ndarray, conducted: np.ndarray,
                      rr_s: np.ndarray) -> Intervals:
    """Median intervals over `conducted` beats (bool per peak); `rr_s[i]` is the RR before peak i."""
    if int(np.sum(conducted)) < MIN_BEATS:
        return Intervals()
    r_on, r_off = qrs_bounds(cleaned, fs, peaks)
    p_on = p_onsets(cleaned, fs, peaks, conducted, r_on)
    t_off = t_ends(cleaned, fs, peaks, r_on, r_off, rr_s)
    to_ms = 1000.0 / fs
    pr = np.where(conducted, (r_on - p_on) * to_ms, np.nan)
    qrs = np.where(conducted, (r_off - r_on) * to_ms, np.nan)
    qt = np.where(conducted, (t_off - r_on) * to_ms, np.nan)
    pr_ms, pr_beats = _median(pr, PR_BOUNDS)
    qrs_ms, qrs_beats = _median(qrs, QRS_BOUNDS)
    qt_ok = np.isfinite(qt) & (qt >= QT_BOUNDS[0]) & (qt <= QT_BOUNDS[1]) & np.isfinite(rr_s) & (rr_s > 0.25)
    qt_ms, qt_beats = _median(np.where(qt_ok, qt, np.nan), QT_BOUNDS)
    bazett = fridericia = None
    if qt_ms is not None:
        rr = rr_s[qt_ok]
        bazett = round(float(np.median(qt[qt_ok] / np.sqrt(rr))), 1)
        fridericia = round(float(np.median(qt[qt_ok] / np.cbrt(rr))), 1)
    return Intervals(pr_ms, pr_beats, qrs_ms, qrs_beats, qt_ms, qt_beats, bazett, fridericia)


def p_wave_consistency(cleaned: np.ndarray, fs: float, peaks: np.ndarray, conducted: np.ndarray) -> float | None:
    """How alike the pre-QRS windows are (median correlation with their median): P waves repeat, AF's f-waves don't.

    Sinus strips on MIT-BIH score 0.8–1.0, AF strips 0.1–0.4. None with fewer than 4 usable beats.
    """
    w0, w1 = round(P_WINDOW_S[0] * fs), round(P_WINDOW_S[1] * fs)
    starts = [int(p) - w0 for p, c in zip(peaks, conducted, strict=True) if c and p - w0 >= 0]
    if len(starts) < 4 or w0 - w1 < 4:
        return None
    windows = np.stack([cleaned[s:s + w0 - w1] for s in starts])
    windows = windows - windows.mean(axis=1, keepdims=True)
    template = np.median(windows, axis=0)
    t_norm = float(np.linalg.norm(template))
    norms = np.linalg.norm(windows, axis=1)
    if t_norm == 0 or np.any(norms == 0):
        return 0.0
    corr = windows @ template / (norms * t_norm)
    return round(float(np.median(corr)), 3)


def p_onsets(cleaned: np.ndarray, fs: float, peaks: np.ndarray, conducted: np.ndarray,
             r_on: np.ndarray | None = None) -> np.ndarray:
    """P onset per conducted beat (samples, NaN elsewhere), from the averaged beat (see the module docstring).

    Every conducted beat with a QRS onset gets the same PR (the average's), so `pr_beats` says how many
    beats the average rests on. NaN everywhere when the average holds no P wave clearly above its noise.
    """
    out = np.full(len(peaks), np.nan)
    if r_on is None:
        r_on, _ = qrs_bounds(cleaned, fs, peaks)
    before, after = round(0.30 * fs), round(0.02 * fs)
    use = [k for k in np.flatnonzero(conducted) if np.isfinite(r_on[k]) and r_on[k] - before >= 0
           and r_on[k] + after < len(cleaned)][:PR_WINDOW_BEATS * 2]
    if len(use) < MIN_BEATS:
        return out
    windows = np.stack([cleaned[int(r_on[k]) - before:int(r_on[k]) + after] for k in use])
    template = np.median(windows, axis=0)  # index `before` is the QRS onset
    pr_level = float(np.median(template[before - round(0.04 * fs):before - round(0.01 * fs) + 1]))
    lo, hi = before - round(0.25 * fs), before - round(0.04 * fs)
    width = max(1, round(0.012 * fs))
    # 12 ms smoothing: wiggles are not waves
    dev = np.convolve(template - pr_level, np.ones(width) / width, mode="same")
    peak = lo + int(np.argmax(np.abs(dev[lo:hi])))
    height = float(np.abs(dev[peak]))
    spread = float(np.median(np.std(windows[:, lo:hi] - template[lo:hi], axis=1)))  # beat-to-beat noise
    if height < max(2 * spread / np.sqrt(len(use)), 0.015 * float(np.ptp(template)), 1e-6):
        return out
    onset = int(peak)  # back to 30 % of the height, or to where the deflection starts growing again (a T wave)
    while onset > 1 and np.abs(dev[onset]) > 0.3 * height and np.abs(dev[onset - 1]) <= np.abs(dev[onset]):
        onset -= 1
    if onset <= 1:
        return out
    for k in use:
        out[k] = r_on[k] - (before - onset)
    return out


def qrs_bounds(cleaned: np.ndarray, fs: float, peaks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """QRS onset and offset per beat (samples, NaN where not measurable), from the slope envelope."""
    slope = np.abs(np.gradient(cleaned)) * fs
    onsets, offsets = np.full(len(peaks), np.nan), np.full(len(peaks), np.nan)
    near, back, ahead = round(0.05 * fs), round(0.12 * fs), round(0.16 * fs)
    for k, r in enumerate(peaks):
        a, b = int(r) - back, int(r) + ahead
        if a < 1 or b >= len(cleaned) - 1:
            continue
        seg = slope[a:b]
        rr = int(r) - a
        steep_before = max(0, rr - near) + int(np.argmax(seg[max(0, rr - near):rr + 1]))
        steep_after = rr + int(np.argmax(seg[rr:rr + near]))
        threshold = SLOPE_FRACTION * float(max(seg[steep_before], seg[steep_after]))
        i = steep_before
        while i > 1 and not (seg[i] < threshold and seg[i - 1] < threshold):
            i -= 1
        j = steep_after
        while j < len(seg) - 2 and not (seg[j] < threshold and seg[j + 1] < threshold):
            j += 1
        if i > 1 and j < len(seg) - 2:
            onsets[k], offsets[k] = a + i, a + j
    return onsets, offsets


def t_ends(cleaned: np.ndarray, fs: float, peaks: np.ndarray, onsets: np.ndarray, offsets: np.ndarray,
           rr_s: np.ndarray) -> np.ndarray:
    """T-wave end per beat by the tangent method (samples, NaN where not measurable)."""
    out = np.full(len(peaks), np.nan)
    slope = np.gradient(cleaned) * fs
    for k, r in enumerate(peaks):
        if not (np.isfinite(onsets[k]) and np.isfinite(offsets[k])):
            continue
        following = rr_s[k + 1] if k + 1 < len(rr_s) and np.isfinite(rr_s[k + 1]) else 1.0
        a = int(offsets[k]) + round(0.06 * fs)
        b = int(r) + round(min(0.6, 0.7 * following) * fs)
        if b - a < round(0.1 * fs) or b + round(0.15 * fs) >= len(cleaned):
            continue
        iso_at = int(onsets[k]) - round(0.02 * fs)
        baseline = float(np.median(cleaned[max(0, iso_at - round(0.02 * fs)):iso_at + 1]))
        window = cleaned[a:b] - baseline
        t_peak = a + int(np.argmax(np.abs(window)))
        sign = 1.0 if cleaned[t_peak] >= baseline else -1.0
        tail = slope[t_peak:t_peak + round(0.15 * fs)] * sign  # the downslope back to baseline is negative
        if len(tail) < 3 or float(np.min(tail)) >= 0:
            continue
        steep = t_peak + int(np.argmin(tail))
        out[k] = steep + (baseline - cleaned[steep]) / slope[steep]
    return out
