"""PR, QRS, QT and QTc from wavelet delineation (neurokit2 `ecg_delineate(method="dwt")`).

Each interval is the median over the beats where delineation gave a physiologically possible value,
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
        return None, int(len(ok))
    return round(float(np.median(ok)), 1), int(len(ok))


def _points(waves: dict[str, list[float]], key: str, n: int) -> np.ndarray:
    values = np.asarray(waves.get(key, [np.nan] * n), dtype=float)
    return values if len(values) == n else np.full(n, np.nan)


def measure_intervals(cleaned: np.ndarray, fs: float, peaks: np.ndarray, conducted: np.ndarray,
                      rr_s: np.ndarray) -> Intervals:
    """Median intervals over `conducted` beats (bool per peak); `rr_s[i]` is the RR before peak i."""
    if int(np.sum(conducted)) < MIN_BEATS:
        return Intervals()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            _, waves = nk.ecg_delineate(cleaned, peaks, sampling_rate=fs, method="dwt")
        except Exception as exc:  # neurokit raises assorted errors on odd beats
            log.info("delineation failed", extra={"error": str(exc)[:200]})
            return Intervals()
    n = len(peaks)
    p_on = _points(waves, "ECG_P_Onsets", n)
    r_on, r_off = _points(waves, "ECG_R_Onsets", n), _points(waves, "ECG_R_Offsets", n)
    t_off = _points(waves, "ECG_T_Offsets", n)
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
