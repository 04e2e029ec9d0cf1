"""PR, QRS, QT and QTc per beat: P onsets from wavelet delineation, QRS and T ends measured directly.

neurokit2's `ecg_delineate(method="dwt")` finds P waves well, but on MIT-BIH its QRS onsets/offsets
put the median QRS of normal-conduction records at 150–360 ms and its T offsets scatter by ±150 ms
(measured: docs/phone-analysis.md). So QRS bounds come from the slope envelope (where |dx/dt| falls
under a fraction of the QRS's steepest slope) and the T end from the classic tangent method (the
steepest T-wave downslope's tangent meets the isoelectric level); PR runs from the DWT P onset to the
QRS onset. Each interval is the median over the beats where delineation gave a physiologically possible value,
reported with the number of beats it rests on, so a reader can tell a 30-beat median from a guess.
Ventricular beats are left out (their QRS and QT are not the patient's conducted ones), and so is
the P-wave window's consistency, which is also the rhythm rules' P-wave presence measure.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass

import neurokit2 as nk
import numpy as np

log = logging.getLogger(__name__)

#: Per-beat values outside these bounds are delineation failures, not findings (ms).
PR_BOUNDS = (60.0, 400.0)
QRS_BOUNDS = (40.0, 200.0)
QT_BOUNDS = (200.0, 700.0)
MIN_BEATS = 3
P_WINDOW_S = (0.25, 0.08)  # before the R peak: where a conducted P wave lies
PR_WINDOW_BEATS = 16  # P onsets from this many conducted beats: enough for a median, half the DWT cost
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


def _points(waves: dict[str, list[float]], key: str, n: int) -> np.ndarray:
    values = np.asarray(waves.get(key, [np.nan] * n), dtype=float)
    return values if len(values) == n else np.full(n, np.nan)


def measure_intervals(cleaned: np.ndarray, fs: float, peaks: np.ndarray, conducted: np.ndarray,
                      rr_s: np.ndarray) -> Intervals:
    """Median intervals over `conducted` beats (bool per peak); `rr_s[i]` is the RR before peak i."""
    if int(np.sum(conducted)) < MIN_BEATS:
        return Intervals()
    p_on = p_onsets(cleaned, fs, peaks, conducted)
    r_on, r_off = qrs_bounds(cleaned, fs, peaks)
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


def p_onsets(cleaned: np.ndarray, fs: float, peaks: np.ndarray, conducted: np.ndarray) -> np.ndarray:
    """DWT P onsets (samples, NaN elsewhere) for the stretch holding the first PR_WINDOW_BEATS conducted beats.

    Delineation dominates the analysis time (≈ 90 % of it), so it runs on that stretch, not the strip.
    """
    out = np.full(len(peaks), np.nan)
    chosen = np.flatnonzero(conducted)[:PR_WINDOW_BEATS]
    if len(chosen) < MIN_BEATS:
        return out
    first, last = int(chosen[0]), int(chosen[-1])
    lo = max(0, int(peaks[first]) - round(0.5 * fs))
    hi = min(len(cleaned), int(peaks[last]) + round(0.5 * fs))
    inside = np.arange(max(0, first - 1), min(len(peaks), last + 2))
    inside = inside[(peaks[inside] >= lo) & (peaks[inside] < hi)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            _, waves = nk.ecg_delineate(cleaned[lo:hi], peaks[inside] - lo, sampling_rate=fs, method="dwt")
        except Exception as exc:  # neurokit raises assorted errors on odd beats
            log.info("delineation failed", extra={"error": str(exc)[:200]})
            return out
    out[inside] = _points(waves, "ECG_P_Onsets", len(inside)) + lo
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
